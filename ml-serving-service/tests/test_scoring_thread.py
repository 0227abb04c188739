"""Where a batch is scored: cheap ones on the event loop, heavy ones on the scoring thread
(the loop keeps running meanwhile), and how a model's stored preprocessing is read.

No servers: the batcher and `LoadedModel` are driven directly with plain torch modules.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time

import numpy as np
import pytest
import torch

from serving_service.batching import MicroBatcher
from serving_service.images import Preprocessing
from serving_service.model import LoadedModel


class Recorder(torch.nn.Module):
    """Linear 64 -> 10 that records the thread and batch size of every call, and can sleep
    (like a heavy network: `time.sleep` releases the GIL as torch's kernels do)."""

    def __init__(self, sleep_s: float = 0.0) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(64, 10)
        self.sleep_s = sleep_s
        self.calls: list[tuple[str, int]] = []
        self.spans: list[tuple[float, float]] = []  # (start, end) of each call, monotonic

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append((threading.current_thread().name, len(x)))
        start = time.monotonic()
        time.sleep(self.sleep_s)
        self.spans.append((start, time.monotonic()))
        return self.linear(x.flatten(1))


def _model(module: torch.nn.Module, inline_rows: int = sys.maxsize) -> LoadedModel:
    return LoadedModel(
        name="m", version="1", run_id=None, module=module, instance_shape=(1, 8, 8),
        classes=tuple(str(i) for i in range(10)), inline_rows=inline_rows,
    )  # fmt: skip


def _batch(rows: int) -> np.ndarray:
    return np.random.default_rng(rows).random((rows, 1, 8, 8), dtype=np.float32)


def test_cheap_batches_run_on_the_loop_and_join() -> None:
    recorder = Recorder()
    model = _model(recorder)

    async def run() -> None:
        batcher = MicroBatcher()
        outs = await asyncio.gather(*(batcher.scores(model, _batch(2)) for _ in range(5)))
        assert [len(o.indices) for o in outs] == [2] * 5
        batcher.close()

    asyncio.run(run())
    assert recorder.calls == [("MainThread", 10)]  # one joined call, on the loop's thread


def test_heavy_batches_run_on_the_scoring_thread_while_the_loop_keeps_going() -> None:
    recorder = Recorder(sleep_s=0.3)
    model = _model(recorder, inline_rows=0)
    ticks: list[float] = []

    async def tick() -> None:
        while True:
            ticks.append(time.monotonic())
            await asyncio.sleep(0.01)

    async def run() -> None:
        batcher = MicroBatcher()
        ticker = asyncio.create_task(tick())
        await asyncio.sleep(0)
        first = asyncio.ensure_future(batcher.scores(model, _batch(3)))
        await asyncio.sleep(0.05)  # the first call is running: these three queue up
        rest = [batcher.scores(model, _batch(2)) for _ in range(3)]
        outs = await asyncio.gather(first, *rest)
        ticker.cancel()
        batcher.close()
        want = model.scores(np.concatenate([_batch(3), _batch(2), _batch(2), _batch(2)]))
        got = np.concatenate([o.probabilities for o in outs])
        np.testing.assert_allclose(got, want.probabilities, rtol=1e-6)

    asyncio.run(run())
    threads = {name for name, _ in recorder.calls[:-1]}
    assert all(name.startswith("scoring") for name in threads), recorder.calls
    # The three requests that arrived during the first call shared the second one.
    assert [rows for _, rows in recorder.calls[:-1]] == [3, 6]
    # The loop ran all along: it ticked while each of the two calls was running.
    for start, end in recorder.spans[:2]:
        assert any(start < t < end for t in ticks), (start, end)


def test_small_requests_that_add_up_past_the_budget_leave_the_loop() -> None:
    recorder = Recorder()
    model = _model(recorder, inline_rows=4)

    async def run() -> None:
        batcher = MicroBatcher()
        await asyncio.gather(*(batcher.scores(model, _batch(1)) for _ in range(5)))
        await asyncio.gather(*(batcher.scores(model, _batch(1)) for _ in range(4)))
        batcher.close()

    asyncio.run(run())
    assert [(name.split("_")[0], rows) for name, rows in recorder.calls] == [
        ("scoring", 5),  # five 1-row requests joined: more than 4 rows, off the loop
        ("MainThread", 4),  # four: within the budget, on the loop
    ]


def test_model_errors_reach_every_caller_on_the_scoring_thread() -> None:
    class Broken(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            raise RuntimeError("kaputt")

    model = _model(Broken(), inline_rows=0)

    async def run() -> list[object]:
        batcher = MicroBatcher()
        calls = (batcher.scores(model, _batch(1)) for _ in range(3))
        out = await asyncio.gather(*calls, return_exceptions=True)
        batcher.close()
        return out

    assert [str(e) for e in asyncio.run(run())] == ["kaputt"] * 3


def test_measure_speed_sends_slow_models_off_the_loop() -> None:
    slow = _model(Recorder(sleep_s=0.005))
    slow.inline_budget_s = 0.002
    slow.measure_speed()
    assert slow.inline_rows == 0
    fast = _model(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10)))
    fast.inline_budget_s = 0.05
    fast.measure_speed()
    assert fast.inline_rows >= 16


def test_preprocessing_from_metadata_and_from_the_signature() -> None:
    meta = {"image_size": 32, "channels": 3, "color_mode": "RGB", "resize": "bilinear",
            "scale": 255.0, "mean": [0.5] * 3, "std": [0.2] * 3,
            "normalize_in_model": True}  # fmt: skip
    prep = Preprocessing.from_metadata(meta, (3, 32, 32))
    assert prep is not None and prep.instance_shape == (3, 32, 32) and prep.color_mode == "RGB"
    digits = Preprocessing.from_metadata(None, (1, 8, 8))
    assert digits == Preprocessing(image_size=8, channels=1)
    assert Preprocessing.from_metadata(None, (64,)) is None  # a model that takes no images
    with pytest.raises(ValueError, match="signature declares \\[3, 64, 64\\]"):
        Preprocessing.from_metadata(meta, (3, 64, 64))
    with pytest.raises(ValueError, match="only bilinear"):
        Preprocessing.from_metadata({**meta, "resize": "nearest"}, (3, 32, 32))
