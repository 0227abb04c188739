"""Micro-batching: requests of one event-loop turn share a forward pass, answers unchanged."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
import torch

from serving_service.batching import MicroBatcher
from serving_service.model import LoadedModel, Scores


class CountingNet(torch.nn.Module):
    """A linear classifier that records the batch size of every call."""

    def __init__(self, seed: int) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.linear = torch.nn.Linear(64, 10)
        self.calls: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append(len(x))
        if torch.isnan(x).any():
            raise ValueError("NaN reached the model")
        return self.linear(x.flatten(1))


def _model(net: torch.nn.Module, version: str) -> LoadedModel:
    return LoadedModel(
        name="m", version=version, run_id=None, module=net, instance_shape=(1, 8, 8),
        classes=tuple(str(i) for i in range(10)),
    )  # fmt: skip


def _batches(sizes: list[int]) -> list[np.ndarray]:
    rng = np.random.default_rng(1)
    return [rng.random((n, 1, 8, 8), dtype=np.float32) for n in sizes]


def test_one_turn_is_one_forward_pass_with_each_requests_rows() -> None:
    net = CountingNet(0)
    model = _model(net, "1")
    batches = _batches([1, 3, 1, 5])
    expected = [model.scores(b) for b in batches]
    net.calls.clear()

    async def run() -> list[Scores]:
        batcher = MicroBatcher()
        return await asyncio.gather(*(batcher.scores(model, b) for b in batches))

    outputs = asyncio.run(run())
    assert net.calls == [10]
    for out, want in zip(outputs, expected, strict=True):
        np.testing.assert_allclose(out.logits, want.logits, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(out.probabilities, want.probabilities, rtol=1e-5, atol=1e-7)
        np.testing.assert_array_equal(out.indices, want.indices)


def test_versions_are_never_mixed_in_one_call() -> None:
    old, new = CountingNet(0), CountingNet(1)
    models = [_model(old, "1"), _model(new, "2"), _model(old, "1")]
    models[2] = models[0]
    batches = _batches([2, 2, 2])

    async def run() -> list[Scores]:
        batcher = MicroBatcher()
        return await asyncio.gather(
            *(batcher.scores(m, b) for m, b in zip(models, batches, strict=True))
        )

    outputs = asyncio.run(run())
    assert old.calls == [4] and new.calls == [2]
    np.testing.assert_allclose(outputs[1].logits, models[1].logits(batches[1]).numpy())


def test_a_model_error_reaches_every_caller_of_the_turn() -> None:
    model = _model(CountingNet(0), "1")
    good, bad = _batches([1, 1])
    bad[:] = np.nan

    async def run() -> list[object]:
        batcher = MicroBatcher()
        return await asyncio.gather(
            batcher.scores(model, good), batcher.scores(model, bad), return_exceptions=True
        )

    results = asyncio.run(run())
    assert all(isinstance(r, ValueError) for r in results)


def test_later_turns_are_batched_separately() -> None:
    net = CountingNet(0)
    model = _model(net, "1")

    async def run() -> None:
        batcher = MicroBatcher()
        for b in _batches([2, 3]):
            await batcher.scores(model, b)

    asyncio.run(run())
    assert net.calls == [2, 3]


@pytest.mark.parametrize("n", [1, 7])
def test_batched_scores_match_classify(n: int) -> None:
    model = _model(CountingNet(0), "1")
    (batch,) = _batches([n])

    async def run() -> Scores:
        return await MicroBatcher().scores(model, batch)

    scores = asyncio.run(run())
    want_labels, want_idx, want_probs = model.classify(batch)
    assert scores.labels(model.classes) == want_labels
    np.testing.assert_array_equal(scores.indices, want_idx)
    np.testing.assert_allclose(scores.probabilities, want_probs, rtol=1e-6)
    np.testing.assert_allclose(scores.probabilities.sum(axis=1), 1.0, rtol=1e-5)
