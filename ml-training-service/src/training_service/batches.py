"""Batches of a dataset split through a torch DataLoader, read from disk, never whole.

`SplitBatches` is a map-style dataset whose item is a whole batch: given an array of row
indices it calls `ImageSplit.read` (which reads only those rows of the snapshot's .npy) and
returns (images, labels). A `BatchSampler` over a `RandomSampler` with the job's private
generator decides the order (one permutation per epoch, drawn in this process), and the
DataLoader runs with `batch_size=None`, so each sampled list of indices is one read. Worker
processes (DATALOADER_WORKERS) only read; everything random happens here, so the same seed
gives the same batches whatever the number of workers.

`augment` is the random crop (zero padding) and horizontal flip of training batches, drawn
from its own generator (saved in checkpoints) and applied in the training process.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
import torch
from torch.utils.data import BatchSampler, DataLoader, RandomSampler, SequentialSampler
from torch.utils.data import Dataset as TorchDataset


class ImageSplitLike(Protocol):
    """What `training_service.data.ImageSplit` offers (see the data package)."""

    labels: np.ndarray

    def __len__(self) -> int: ...

    def read(self, indices: np.ndarray) -> np.ndarray: ...


class SplitBatches(TorchDataset[tuple[torch.Tensor, torch.Tensor]]):
    """Item = one batch: `read(indices)` -> (float32 (B, C, H, W), int64 (B,))."""

    def __init__(self, split: ImageSplitLike) -> None:
        self.split = split
        self.labels = torch.from_numpy(np.asarray(split.labels, dtype=np.int64))

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, indices: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        rows = np.asarray(indices, dtype=np.int64)
        images = torch.from_numpy(np.ascontiguousarray(self.split.read(rows), dtype=np.float32))
        return images, self.labels[torch.from_numpy(rows)]


def batch_loader(
    split: ImageSplitLike,
    batch_size: int,
    *,
    workers: int,
    generator: torch.Generator | None = None,
) -> DataLoader[tuple[torch.Tensor, torch.Tensor]]:
    """Shuffled batches when `generator` is given (training), else in order (evaluation)."""
    batches = SplitBatches(split)
    sampler = (
        RandomSampler(range(len(batches)), generator=generator)
        if generator is not None
        else SequentialSampler(range(len(batches)))
    )
    # The loader's own seed draw for its workers must not touch torch's global RNG.
    loader_generator = torch.Generator()
    loader_generator.manual_seed(0)
    return DataLoader(
        batches,
        sampler=BatchSampler(sampler, batch_size=batch_size, drop_last=False),
        batch_size=None,
        num_workers=workers,
        persistent_workers=workers > 0,
        generator=loader_generator,
    )


def crop_padding(image_size: int) -> int:
    """4 pixels for 32x32 and up (the usual CIFAR setting), 1/8 of the side below."""
    return 4 if image_size >= 32 else max(1, image_size // 8)


def augment(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random crop after zero padding, and a horizontal flip of half the images.

    Vectorised: one gather per batch. Draws come from `generator` only, in a fixed order.
    """
    count, channels, height, width = images.shape
    pad = crop_padding(min(height, width))
    padded = torch.nn.functional.pad(images, (pad, pad, pad, pad))
    top = torch.randint(0, 2 * pad + 1, (count,), generator=generator)
    left = torch.randint(0, 2 * pad + 1, (count,), generator=generator)
    flip = torch.rand(count, generator=generator) < 0.5
    rows = top[:, None] + torch.arange(height)[None, :]  # (N, H)
    cols = left[:, None] + torch.arange(width)[None, :]  # (N, W)
    cols = torch.where(flip[:, None], cols.flip(1), cols)
    batch_index = torch.arange(count)[:, None, None, None]
    channel_index = torch.arange(channels)[None, :, None, None]
    return padded[batch_index, channel_index, rows[:, None, :, None], cols[:, None, None, :]]
