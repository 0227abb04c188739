"""The training stage: digits quality, determinism, DataLoader reading, augmentation, early
stopping, and resuming from a checkpoint exactly where an uninterrupted run would be."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from training_service.batches import augment, batch_loader
from training_service.checkpoints import CheckpointFile
from training_service.data import Dataset, build_dataset
from training_service.params import EpochResult, TrainingCancelled, TrainingParams
from training_service.train import TrainingResult, fit


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    return build_dataset("digits", data_dir=tmp_path_factory.mktemp("d"), seed=0)


@pytest.fixture(scope="module")
def shapes(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    """Small RGB shapes (16x16): fast, and several batches per epoch."""
    return build_dataset(
        "shapes", data_dir=tmp_path_factory.mktemp("s"), count=160, image_size=16, seed=3
    )


def same_weights(a: TrainingResult, b: TrainingResult) -> bool:
    sa, sb = a.model.state_dict(), b.model.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def logits_of(result: TrainingResult, dataset: Dataset) -> torch.Tensor:
    images = torch.from_numpy(dataset.split("test").read(np.arange(8)))
    with torch.no_grad():
        return result.model(images)


def test_default_hyperparameters_learn_digits(digits: Dataset) -> None:
    epochs: list[int] = []
    result = fit(digits, TrainingParams(), on_epoch=lambda e: epochs.append(e.epoch))
    assert epochs == list(range(1, 11))
    assert result.final.test_accuracy >= 0.97
    assert result.confusion.shape == (10, 10)
    assert result.confusion.sum() == digits.info.n_test
    assert result.history[-1].train_loss < result.history[0].train_loss
    assert result.stopped_early_at is None


OPTIONS = TrainingParams(
    epochs=2, batch_size=32, learning_rate=0.05, seed=7, optimizer="sgd",
    weight_decay=5e-4, augmentation=True,
)  # fmt: skip


def test_same_seed_and_data_give_the_same_model(shapes: Dataset) -> None:
    first, second = fit(shapes, OPTIONS), fit(shapes, OPTIONS)
    assert first.history == second.history
    assert same_weights(first, second)
    assert torch.equal(logits_of(first, shapes), logits_of(second, shapes))
    other = fit(shapes, TrainingParams(**{**OPTIONS.__dict__, "seed": 8}))
    assert not same_weights(first, other)


def test_dataloader_workers_read_the_same_batches(shapes: Dataset) -> None:
    in_process = fit(shapes, OPTIONS, workers=0)
    with_workers = fit(shapes, OPTIONS, workers=2)
    assert same_weights(in_process, with_workers)


def test_batches_come_from_split_reads(shapes: Dataset) -> None:
    split = shapes.split("train")
    generator = torch.Generator()
    generator.manual_seed(0)
    seen: list[int] = []
    for images, labels in batch_loader(split, 50, workers=0, generator=generator):
        assert images.dtype == torch.float32 and images.shape[1:] == (3, 16, 16)
        assert images.min() >= 0.0 and images.max() <= 1.0
        seen.append(len(labels))
    assert sum(seen) == len(split) and max(seen) == 50


def test_augmentation_crops_and_flips_deterministically() -> None:
    images = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).reshape(2, 3, 8, 8)
    draws = [torch.Generator().manual_seed(1) for _ in range(2)]
    once, again = augment(images, draws[0]), augment(images, draws[1])
    assert once.shape == images.shape and torch.equal(once, again)
    assert not torch.equal(once, images)
    # A centred crop (offset = padding, 1 px at 8x8) is the image itself, flipped or not.
    many = augment(images.repeat(100, 1, 1, 1), torch.Generator().manual_seed(2))
    assert (many == images.repeat(100, 1, 1, 1)).all(dim=(1, 2, 3)).any()
    assert (many == images.flip(3).repeat(100, 1, 1, 1)).all(dim=(1, 2, 3)).any()
    assert many[:, :, 0, :].eq(0).all(dim=(1, 2)).any()  # shifted down: a zero top row


def test_early_stopping_watches_the_held_out_loss(shapes: Dataset) -> None:
    params = TrainingParams(
        epochs=30, batch_size=16, learning_rate=0.01, optimizer="adam", weight_decay=0.0,
        early_stopping_patience=2, seed=1,
    )  # fmt: skip
    result = fit(shapes, params)
    stop = result.stopped_early_at
    assert stop is not None and stop == len(result.history) < 30
    losses = [e.test_loss for e in result.history]
    best = min(losses[: stop - 2])
    assert all(loss >= best for loss in losses[stop - 2 :])  # no improvement for 2 epochs


def test_resuming_from_a_checkpoint_equals_an_uninterrupted_run(
    shapes: Dataset, tmp_path: Path
) -> None:
    params = TrainingParams(**{**OPTIONS.__dict__, "epochs": 3})
    uninterrupted = fit(shapes, params)
    checkpoint = CheckpointFile(tmp_path / "job.pt")

    def crash_after_epoch_1(epoch: EpochResult) -> None:
        if epoch.epoch == 1:
            raise KeyboardInterrupt  # the process dies right after its checkpoint

    with pytest.raises(KeyboardInterrupt):
        fit(shapes, params, on_epoch=crash_after_epoch_1, save_checkpoint=checkpoint.save)
    saved = checkpoint.load()
    assert saved is not None and saved["epoch"] == 1
    epochs: list[int] = []
    resumed = fit(shapes, params, resume=saved, on_epoch=lambda e: epochs.append(e.epoch))
    assert epochs == [2, 3]
    assert resumed.history == uninterrupted.history
    assert same_weights(resumed, uninterrupted)


def test_fit_stops_when_asked(digits: Dataset) -> None:
    with pytest.raises(TrainingCancelled):
        fit(digits, TrainingParams(epochs=5), should_stop=lambda: True)


def test_tiny_batches_and_batch_larger_than_the_data_work(tmp_path: Path) -> None:
    dataset = build_dataset("digits", data_dir=tmp_path, test_fraction=0.9, seed=1)
    fit(dataset, TrainingParams(epochs=1, batch_size=4096))
    fit(dataset, TrainingParams(epochs=1, batch_size=1))
