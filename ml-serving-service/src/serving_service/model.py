"""A registered model version loaded into memory: input adaptation, prediction, smoke test.

`LoadedModel` is what a request meets: it shapes JSON instances into the float32 batch the
signature declares, runs the forward pass (`graph.py`) under `torch.inference_mode` and
turns logits into probabilities and classes in numpy. Reading a version's artifacts into a
model is `mlmodel.py`'s job; fetching them, `registry.py`'s.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import torch

from serving_service.graph import Forward
from serving_service.images import Preprocessing
from serving_service.monitoring import InputStats

# Rows timed at load to tell a forward pass's fixed cost from its cost per row.
SPEED_ROWS = 8


class SmokeTestError(Exception):
    """The version loaded but does not produce valid predictions on a sample input."""


class InvalidInput(ValueError):
    """The request's instances cannot be fed to the model; the message says how to fix it."""


@dataclass(frozen=True, slots=True)
class Scores:
    """Rows of a model's output: raw logits, softmax probabilities and class indices."""

    logits: np.ndarray
    probabilities: np.ndarray
    indices: np.ndarray

    def labels(self, classes: tuple[str, ...]) -> list[str]:
        return [classes[i] for i in self.indices.tolist()]

    def rows(self, start: int, end: int) -> Scores:
        return Scores(
            self.logits[start:end], self.probabilities[start:end], self.indices[start:end]
        )


@dataclass
class LoadedModel:
    """One registered version ready to answer; immutable once published to a slot."""

    name: str
    version: str
    run_id: str | None
    module: Forward
    instance_shape: tuple[int, ...]
    classes: tuple[str, ...]
    metrics: dict[str, float] = field(default_factory=dict)
    sample: np.ndarray | None = None
    # Training-data statistics logged with the model: the reference of the drift score.
    input_stats: InputStats | None = None
    # How image files become inputs (None: the model takes no images).
    preprocessing: Preprocessing | None = None
    # Batches of up to this many rows are scored on the event loop, bigger ones on the
    # scoring thread; `smoke_test` measures it against `inline_budget_s`.
    inline_rows: int = sys.maxsize
    inline_budget_s: float = 0.002
    loaded_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def __post_init__(self) -> None:
        self.instance_size = math.prod(self.instance_shape)
        self._squeezed = tuple(d for d in self.instance_shape if d != 1)

    def to_batch(self, instances: Any) -> np.ndarray:
        """Turn a JSON list of instances into a float32 (N, *instance_shape) array.

        Each instance may have the signature's shape, that shape without its size-1 axes
        (an 8x8 image for a (1, 8, 8) signature) or be flat.
        """
        if not isinstance(instances, list):
            raise InvalidInput("'instances' must be a list of images")
        if not instances:
            raise InvalidInput("'instances' is empty: send at least one image")
        try:
            batch = np.asarray(instances, dtype=np.float32)
        except (ValueError, TypeError) as exc:
            raise InvalidInput(
                f"instances must be numbers with the same shape each, {self.expected_shapes()}"
                f" ({exc})"
            ) from exc
        return self.reshape_batch(batch)

    def reshape_batch(self, batch: np.ndarray) -> np.ndarray:
        """Validate an (N, ...) float32 array and reshape it to the model's input."""
        if batch.ndim < 2:
            raise InvalidInput(f"each instance must be an image, {self.expected_shapes()}")
        got = batch.shape[1:]
        if got != self.instance_shape:
            same_size = math.prod(got) == self.instance_size
            if not same_size or (
                len(got) > 1 and tuple(d for d in got if d != 1) != self._squeezed
            ):
                raise InvalidInput(
                    f"each instance must have shape {self.expected_shapes()}; got {list(got)}"
                )
            batch = batch.reshape((batch.shape[0], *self.instance_shape))
        if not np.isfinite(batch).all():
            raise InvalidInput("instances contain non-finite numbers (NaN or infinity)")
        return batch

    def expected_shapes(self) -> str:
        shapes = [list(self.instance_shape)]
        if list(self._squeezed) not in shapes:
            shapes.append(list(self._squeezed))
        return " or ".join(str(s) for s in shapes) + f" or flat {self.instance_size}"

    def logits(self, batch: np.ndarray) -> torch.Tensor:
        """Raw model output for a batch already shaped by `reshape_batch`."""
        with torch.inference_mode():
            return self._forward(batch)

    def scores(self, batch: np.ndarray) -> Scores:
        """Logits, softmax probabilities and class indices of a shaped batch, as numpy.

        The softmax runs in numpy: on the few rows of a request, each torch call costs
        several microseconds of dispatch, more than the arithmetic.
        """
        with torch.inference_mode():
            out = self._forward(batch)
        # orjson serializes only C-contiguous arrays; a model may return a transposed view.
        logits = np.ascontiguousarray(out.numpy())
        shifted = logits - logits.max(axis=1, keepdims=True)
        exp = np.exp(shifted)
        probs = exp / exp.sum(axis=1, keepdims=True)
        return Scores(logits, probs, shifted.argmax(axis=1))

    def classify(self, batch: np.ndarray) -> tuple[list[str], np.ndarray, np.ndarray]:
        """Labels, class indices and softmax probabilities for a shaped batch."""
        scores = self.scores(batch)
        return scores.labels(self.classes), scores.indices, scores.probabilities

    def _forward(self, batch: np.ndarray) -> torch.Tensor:
        out = self.module(torch.from_numpy(batch))
        if isinstance(out, tuple | list):
            out = out[0]
        return out

    def smoke_test(self) -> None:
        """Predict on the logged sample (or a synthetic one) and on a single instance.

        Refuses a version whose output has the wrong shape or is not finite, and one
        exported with a fixed batch size, before it ever reaches a client.
        """
        if self.sample is not None and len(self.sample) >= 2:
            sample = self.reshape_batch(self.sample.astype(np.float32))
        else:
            rng = np.random.default_rng(0)
            sample = rng.random((2, *self.instance_shape), dtype=np.float32)
        for batch in (sample, sample[:1]):
            try:
                out = self.logits(np.ascontiguousarray(batch))
            except Exception as exc:
                raise SmokeTestError(
                    f"prediction on a sample batch of {len(batch)} failed: {exc}"
                ) from exc
            expected = (len(batch), len(self.classes))
            if tuple(out.shape) != expected:
                raise SmokeTestError(
                    f"output shape {list(out.shape)} for a batch of {len(batch)}, "
                    f"expected {list(expected)} ({len(self.classes)} classes)"
                )
            if not torch.isfinite(out).all():
                raise SmokeTestError("the model returns non-finite outputs on a sample input")
        self.measure_speed()

    def measure_speed(self) -> None:
        """Set `inline_rows`: the largest batch whose forward pass fits `inline_budget_s`.

        A forward pass on the event loop holds every other request (and `/health`) until it
        ends; one that is cheap costs less there than the hop to a thread. The best of three
        timings at 1 and `SPEED_ROWS` rows gives a fixed cost and a cost per row.
        """
        rng = np.random.default_rng(0)
        batch = rng.random((SPEED_ROWS, *self.instance_shape), dtype=np.float32)
        one, many = (min(_seconds(self.logits, b) for _ in range(3)) for b in (batch[:1], batch))
        per_row = max(many - one, 0.0) / (SPEED_ROWS - 1)
        fixed = max(one - per_row, 0.0)
        budget = self.inline_budget_s
        if one > budget:
            self.inline_rows = 0
        elif per_row == 0:
            self.inline_rows = sys.maxsize
        else:
            self.inline_rows = max(1, int((budget - fixed) / per_row))


def _seconds(fn: Any, batch: np.ndarray) -> float:
    start = time.perf_counter()
    fn(batch)
    return time.perf_counter() - start
