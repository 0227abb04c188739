"""Prediction ids and feedback outcomes: what a ledger does, and the in-process ledger.

Every prediction gets an id: 128 random bits per request (`secrets.token_hex(16)`) and the
instance's index, so an id cannot be derived from any other client's ids and guessing one
is hopeless; unknown ids are answered 404 and count nothing. A client that later learns the
true label posts it to `/v1/feedback`, and the outcome joins a bounded window per model
version, reported as live accuracy.

`ProcessLedger` keeps all of it in this process (STATE_URL empty): plain in-memory state
touched only from the event loop, so no locks; the hot path pays one dict insert. The
replicas of a scaled-out deployment share one ledger in Redis instead
(`shared_state.RedisLedger`), behind the same `Ledger` interface.
"""

from __future__ import annotations

import secrets
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Any, Literal, Protocol

# Where the figures come from: this process alone, the replicas' shared store, or the
# shared store while it does not answer.
StateKind = Literal["process", "shared", "unavailable"]


class UnknownPrediction(KeyError):
    """The id was never issued, or is older than the ids this service remembers."""


class FeedbackAlreadyGiven(ValueError):
    """A prediction's outcome is counted once."""


class InvalidLabel(ValueError):
    """The label is not one of the classes of the version that made the prediction."""


class StateUnavailable(RuntimeError):
    """The shared state store (STATE_URL) does not answer; the detail never names the URL."""


@dataclass(frozen=True)
class Outcome:
    """One recorded feedback: the answer of POST /v1/feedback and the version's accuracy."""

    answer: dict[str, Any]
    accuracy: float


class Ledger(Protocol):
    """Issues prediction ids and counts each one's feedback once."""

    def issue(self, version: str, classes: tuple[str, ...], labels: list[str]) -> list[str]:
        """Remember a request's predictions (no I/O on the caller's path); one id each."""
        ...

    async def feedback(self, prediction_id: str, label: str) -> Outcome:
        """Count whether the prediction was right; raises the errors above."""
        ...

    async def accuracy(self) -> dict[str, dict[str, Any]]:
        """Live accuracy by version: feedback, correct, accuracy (raises StateUnavailable)."""
        ...

    def state(self) -> StateKind: ...


def new_key() -> str:
    """A request's id prefix: 128 random bits, so other requests' ids cannot be derived."""
    return secrets.token_hex(16)


def ids_for(key: str, count: int) -> list[str]:
    if count == 1:
        return [f"{key}-0"]
    return [f"{key}-{i}" for i in range(count)]


def split_id(prediction_id: str) -> tuple[str, int | None]:
    """(request key, instance index), the index None when it is not a number."""
    key, _, index = prediction_id.rpartition("-")
    return key, int(index) if index.isdigit() and len(index) < 10 else None


def unknown(prediction_id: str, remembered: int, where: str = "this service remembers") -> str:
    return (
        f"unknown prediction_id '{prediction_id}': it was never issued, or it is older "
        f"than the last {remembered} predictions {where}"
    )


def invalid_label(label: str, version: str, classes: list[str]) -> str:
    return f"label '{label}' is not a class of version {version}; use one of {classes}"


def already_given(prediction_id: str) -> str:
    return f"feedback for '{prediction_id}' was already recorded"


def accuracy_row(feedback: int, correct: int) -> dict[str, Any]:
    return {
        "feedback": feedback,
        "correct": correct,
        "accuracy": round(correct / feedback, 6) if feedback else None,
    }


@dataclass
class _Issued:
    version: str
    labels: list[str]
    classes: tuple[str, ...]
    answered: set[int]


class ProcessLedger:
    """The ids of the last `remembered` predictions and the last `window` outcomes per
    version, in this process."""

    def __init__(self, window: int, remembered: int) -> None:
        self.window = window
        self.remembered = remembered
        self._issued: OrderedDict[str, _Issued] = OrderedDict()
        self._issued_count = 0
        self._outcomes: dict[str, deque[bool]] = {}

    def issue(self, version: str, classes: tuple[str, ...], labels: list[str]) -> list[str]:
        key = new_key()
        self._issued[key] = _Issued(version, labels, classes, set())
        self._issued_count += len(labels)
        while self._issued_count > self.remembered and len(self._issued) > 1:
            _, old = self._issued.popitem(last=False)
            self._issued_count -= len(old.labels)
        return ids_for(key, len(labels))

    async def feedback(self, prediction_id: str, label: str) -> Outcome:
        key, i = split_id(prediction_id)
        issued = self._issued.get(key)
        if issued is None or i is None or i >= len(issued.labels):
            raise UnknownPrediction(unknown(prediction_id, self.remembered))
        if i in issued.answered:
            raise FeedbackAlreadyGiven(already_given(prediction_id))
        if label not in issued.classes:
            raise InvalidLabel(invalid_label(label, issued.version, list(issued.classes)))
        issued.answered.add(i)
        predicted = issued.labels[i]
        correct = predicted == label
        recent = self._outcomes.setdefault(issued.version, deque(maxlen=self.window))
        recent.append(correct)
        answer = {
            "prediction_id": prediction_id,
            "model_version": issued.version,
            "predicted": predicted,
            "label": label,
            "correct": correct,
        }
        return Outcome(answer, sum(recent) / len(recent))

    async def accuracy(self) -> dict[str, dict[str, Any]]:
        return {v: accuracy_row(len(r), sum(r)) for v, r in self._outcomes.items()}

    def state(self) -> StateKind:
        return "process"
