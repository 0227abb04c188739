"""Live model monitoring: prediction ids, feedback accuracy per version, input drift.

Every prediction gets an id: 128 random bits per request (`secrets.token_hex(16)`) and the
instance's index, so an id cannot be derived from any other client's ids and guessing one
is hopeless; unknown ids are answered 404 and count nothing. A client that later learns
the true label posts it to `/v1/feedback`, and the outcome joins a bounded window per model
version. The inputs the alias's model receives fill a ring of the last `window` instances
whose per-pixel mean is compared with the training statistics logged with the model (MLmodel
`input_stats`).

All of it is plain in-memory state touched only from the event loop, so there are no locks;
the hot path pays one dict insert and one ring copy per request.
"""

from __future__ import annotations

import secrets
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Any

import numpy as np

from serving_service.metrics import count_feedback, export_drift

# Added to the training std so that pixels that never vary (digit borders) do not turn the
# smallest shift into an infinite score; inputs are in 0..1, so 0.1 is "a tenth of the range".
DRIFT_STD_FLOOR = 0.1
# Values the input ring holds at most (16 MB of float32): the last `window` digits fit many
# times over, while a 224x224 RGB model keeps its last 106 inputs instead of 600 MB.
DRIFT_RING_MAX_VALUES = 4_000_000


class UnknownPrediction(KeyError):
    """The id was never issued, or is older than the ids this service remembers."""


class FeedbackAlreadyGiven(ValueError):
    """A prediction's outcome is counted once."""


class InvalidLabel(ValueError):
    """The label is not one of the classes of the version that made the prediction."""


@dataclass(frozen=True)
class InputStats:
    """Per-pixel mean and std of the training inputs, flattened row-major."""

    mean: np.ndarray
    std: np.ndarray
    count: int

    @classmethod
    def parse(cls, raw: Any, size: int) -> InputStats | None:
        """From MLmodel metadata; None when missing or not matching the input size."""
        if not isinstance(raw, dict):
            return None
        try:
            mean = np.asarray(raw["mean"], dtype=np.float64).ravel()
            std = np.asarray(raw["std"], dtype=np.float64).ravel()
            count = int(raw.get("count", 0))
        except (KeyError, TypeError, ValueError):
            return None
        if mean.size != size or std.size != size:
            return None
        return cls(mean=mean, std=std, count=count)


@dataclass
class _Issued:
    version: str
    labels: list[str]
    classes: tuple[str, ...]
    answered: set[int]


class _Outcomes:
    """The last `window` feedback outcomes of one version."""

    def __init__(self, window: int) -> None:
        self.recent: deque[bool] = deque(maxlen=window)

    def add(self, correct: bool) -> float:
        self.recent.append(correct)
        return self.accuracy or 0.0

    @property
    def accuracy(self) -> float | None:
        return sum(self.recent) / len(self.recent) if self.recent else None


class InputRing:
    """The last `window` flattened instances sent to one version, for the drift score
    (fewer for large inputs: at most `DRIFT_RING_MAX_VALUES` values)."""

    def __init__(self, version: str, size: int, window: int, reference: InputStats | None):
        self.version = version
        self.reference = reference
        window = max(1, min(window, DRIFT_RING_MAX_VALUES // size))
        self._rows = np.zeros((window, size), dtype=np.float32)
        self._next = 0
        self._filled = 0

    @property
    def size(self) -> int:
        return int(self._rows.shape[1])

    def add(self, batch: np.ndarray) -> None:
        flat = batch.reshape(len(batch), -1)
        window = len(self._rows)
        if len(flat) >= window:
            self._rows[:] = flat[-window:]
            self._next, self._filled = 0, window
            return
        end = self._next + len(flat)
        if end <= window:
            self._rows[self._next : end] = flat
        else:
            split = window - self._next
            self._rows[self._next :] = flat[:split]
            self._rows[: end - window] = flat[split:]
        self._next = end % window
        self._filled = min(window, self._filled + len(flat))

    def report(self) -> dict[str, Any]:
        score = None
        if self.reference is not None and self._filled:
            live_mean = self._rows[: self._filled].mean(axis=0, dtype=np.float64)
            shift = np.abs(live_mean - self.reference.mean) / (self.reference.std + DRIFT_STD_FLOOR)
            score = round(float(shift.mean()), 6)
        return {
            "version": self.version,
            "instances": self._filled,
            "score": score,
            "reference": self.reference is not None,
        }


class LiveMonitor:
    """Issued prediction ids, feedback outcomes per version and the alias's input ring."""

    def __init__(self, window: int, remembered: int) -> None:
        self.window = window
        self.remembered = remembered
        self._issued: OrderedDict[str, _Issued] = OrderedDict()
        self._issued_count = 0
        self._outcomes: dict[str, _Outcomes] = {}
        self._ring: InputRing | None = None

    def issue(self, version: str, classes: tuple[str, ...], labels: list[str]) -> list[str]:
        """Remember a request's predictions; returns one id per instance."""
        # 128 random bits per request: ids of other requests cannot be derived or guessed.
        key = secrets.token_hex(16)
        self._issued[key] = _Issued(version, labels, classes, set())
        self._issued_count += len(labels)
        while self._issued_count > self.remembered and len(self._issued) > 1:
            _, old = self._issued.popitem(last=False)
            self._issued_count -= len(old.labels)
        if len(labels) == 1:
            return [f"{key}-0"]
        return [f"{key}-{i}" for i in range(len(labels))]

    def observe_inputs(self, version: str, batch: np.ndarray, reference: InputStats | None) -> None:
        """Add the alias's inputs to the drift ring (a new version starts a new ring)."""
        ring = self._ring
        size = batch[0].size
        if ring is None or ring.version != version or ring.size != size:
            ring = self._ring = InputRing(version, size, self.window, reference)
        ring.add(batch)

    def feedback(self, prediction_id: str, label: str) -> dict[str, Any]:
        """Count whether the prediction was right; errors say what is wrong with the id."""
        key, _, index = prediction_id.rpartition("-")
        issued = self._issued.get(key)
        if issued is None or not index.isdigit() or int(index) >= len(issued.labels):
            raise UnknownPrediction(
                f"unknown prediction_id '{prediction_id}': it was never issued, or it is older "
                f"than the last {self.remembered} predictions this service remembers"
            )
        i = int(index)
        if i in issued.answered:
            raise FeedbackAlreadyGiven(f"feedback for '{prediction_id}' was already recorded")
        if label not in issued.classes:
            raise InvalidLabel(
                f"label '{label}' is not a class of version {issued.version}; "
                f"use one of {list(issued.classes)}"
            )
        issued.answered.add(i)
        predicted = issued.labels[i]
        correct = predicted == label
        outcomes = self._outcomes.setdefault(issued.version, _Outcomes(self.window))
        count_feedback(issued.version, correct, outcomes.add(correct))
        return {
            "prediction_id": prediction_id,
            "model_version": issued.version,
            "predicted": predicted,
            "label": label,
            "correct": correct,
        }

    def accuracy(self) -> dict[str, dict[str, Any]]:
        return {
            version: {
                "feedback": len(o.recent),
                "correct": sum(o.recent),
                "accuracy": None if o.accuracy is None else round(o.accuracy, 6),
            }
            for version, o in self._outcomes.items()
        }

    def drift(self) -> dict[str, Any] | None:
        return self._ring.report() if self._ring is not None else None

    def report(self) -> dict[str, Any]:
        """The `live` section of GET /v1/model."""
        return {"window": self.window, "accuracy": self.accuracy(), "drift": self.drift()}


def new_monitor(window: int, remembered: int) -> LiveMonitor:
    """A monitor whose drift score is exported on /metrics (one per app; tests make several)."""
    monitor = LiveMonitor(window, remembered)
    export_drift(monitor.drift)
    return monitor
