"""Model and training stages: shapes, determinism and a minimum-functionality check."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from training_service.data import Dataset, build_dataset
from training_service.model import build_model
from training_service.params import TrainingCancelled, TrainingParams
from training_service.train import fit


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    return build_dataset("digits", data_dir=tmp_path_factory.mktemp("d"), seed=0)


def test_model_maps_images_to_logits() -> None:
    model = build_model(10, seed=0).eval()
    logits = model(torch.rand(5, 1, 8, 8))
    assert logits.shape == (5, 10)
    # Logits, not probabilities: rows need not sum to 1.
    assert not torch.allclose(logits.sum(dim=1), torch.ones(5))


def test_same_seed_same_initial_weights() -> None:
    a, b, c = build_model(3, seed=1), build_model(3, seed=1), build_model(3, seed=2)
    for (_, wa), (_, wb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert torch.equal(wa, wb)
    assert not torch.equal(a.head[-1].weight, c.head[-1].weight)


def test_model_needs_two_classes() -> None:
    with pytest.raises(ValueError, match="at least 2 classes"):
        build_model(1, seed=0)


def test_training_is_deterministic_under_a_seed(digits: Dataset) -> None:
    params = TrainingParams(epochs=1, batch_size=128, learning_rate=0.01, seed=7)
    first, second = fit(digits, params), fit(digits, params)
    assert first.final == second.final
    for wa, wb in zip(
        first.model.state_dict().values(), second.model.state_dict().values(), strict=True
    ):
        assert torch.equal(wa, wb)


def test_default_hyperparameters_learn_digits(digits: Dataset) -> None:
    epochs: list[int] = []
    result = fit(digits, TrainingParams(), on_epoch=lambda e: epochs.append(e.epoch))
    assert epochs == list(range(1, 11))
    assert result.final.test_accuracy >= 0.97
    assert result.confusion.shape == (10, 10)
    assert result.confusion.sum() == digits.info.n_test
    assert result.history[-1].train_loss < result.history[0].train_loss


def test_fit_stops_when_asked(digits: Dataset) -> None:
    with pytest.raises(TrainingCancelled):
        fit(digits, TrainingParams(epochs=5), should_stop=lambda: True)


def test_tiny_batches_and_batch_larger_than_the_data_work(tmp_path: Path) -> None:
    dataset = build_dataset("digits", data_dir=tmp_path, test_fraction=0.9, seed=1)
    fit(dataset, TrainingParams(epochs=1, batch_size=4096))
    fit(dataset, TrainingParams(epochs=1, batch_size=1))
