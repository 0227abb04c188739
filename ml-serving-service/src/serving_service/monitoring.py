"""Live model monitoring: prediction ids and feedback accuracy per version (through a
ledger, `feedback_ledger.py`), and input drift.

The inputs the alias's model receives fill a ring of the last `window` instances whose
per-pixel mean is compared with the training statistics logged with the model (MLmodel
`input_stats`). The ring is this replica's own (each replica scores its share of the
traffic); the ledger is this process's or, with STATE_URL, shared by every replica.

The ring is plain in-memory state touched only from the event loop, so there are no locks;
the hot path pays one ring copy and the ledger's in-memory `issue` per request.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from serving_service.feedback_ledger import Ledger, StateUnavailable
from serving_service.metrics import count_feedback, export_drift

# Added to the training std so that pixels that never vary (digit borders) do not turn the
# smallest shift into an infinite score; inputs are in 0..1, so 0.1 is "a tenth of the range".
DRIFT_STD_FLOOR = 0.1
# Values the input ring holds at most (16 MB of float32): the last `window` digits fit many
# times over, while a 224x224 RGB model keeps its last 106 inputs instead of 600 MB.
DRIFT_RING_MAX_VALUES = 4_000_000


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
    """The ledger of prediction ids and feedback, and the alias's input ring."""

    def __init__(self, window: int, ledger: Ledger) -> None:
        self.window = window
        self.ledger = ledger
        self._ring: InputRing | None = None

    def issue(self, version: str, classes: tuple[str, ...], labels: list[str]) -> list[str]:
        """Remember a request's predictions; returns one id per instance."""
        return self.ledger.issue(version, classes, labels)

    def observe_inputs(self, version: str, batch: np.ndarray, reference: InputStats | None) -> None:
        """Add the alias's inputs to the drift ring (a new version starts a new ring)."""
        ring = self._ring
        size = batch[0].size
        if ring is None or ring.version != version or ring.size != size:
            ring = self._ring = InputRing(version, size, self.window, reference)
        ring.add(batch)

    async def feedback(self, prediction_id: str, label: str) -> dict[str, Any]:
        """Count whether the prediction was right; errors say what is wrong with the id."""
        outcome = await self.ledger.feedback(prediction_id, label)
        answer = outcome.answer
        count_feedback(answer["model_version"], answer["correct"], outcome.accuracy)
        return answer

    def drift(self) -> dict[str, Any] | None:
        return self._ring.report() if self._ring is not None else None

    async def report(self) -> dict[str, Any]:
        """The `live` section of GET /v1/model (accuracy empty while the store is down)."""
        try:
            accuracy = await self.ledger.accuracy()
        except StateUnavailable:
            accuracy = {}
        return {
            "window": self.window,
            "state": self.ledger.state(),
            "accuracy": accuracy,
            "drift": self.drift(),
        }


def new_monitor(window: int, ledger: Ledger) -> LiveMonitor:
    """A monitor whose drift score is exported on /metrics (one per app; tests make several)."""
    monitor = LiveMonitor(window, ledger)
    export_drift(monitor.drift)
    return monitor
