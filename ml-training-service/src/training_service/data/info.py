"""What a dataset snapshot is, without its pixels: DatasetInfo, the limits, the errors."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Source = Literal["digits", "folder", "shapes", "archive"]
Split = Literal["train", "test"]

#: Allowed square sides of a snapshot's images.
MIN_IMAGE_SIZE, MAX_IMAGE_SIZE = 8, 512


class DatasetError(ValueError):
    """The request cannot produce a dataset; the message says what to change (a 422)."""


class DatasetTooLargeError(DatasetError):
    """The input is over one of the size limits (a 413); the message names the setting."""


class DatasetNotFoundError(KeyError):
    """No snapshot with this id exists."""


@dataclass(frozen=True)
class DatasetLimits:
    """The settings that bound what one request may make the service read and store."""

    max_archive_bytes: int = 1 << 30
    max_archive_uncompressed_bytes: int = 4 << 30
    max_dataset_images: int = 200_000
    max_image_pixels: int = 40_000_000


@dataclass(frozen=True)
class DatasetInfo:
    """A snapshot's description (the API's dataset body, the snapshot's info.json)."""

    dataset_id: str
    source: str
    path: str | None
    n_train: int
    n_test: int
    classes: list[str]
    image_shape: list[int]  # [H, W]
    sha256: str
    created_at: str
    test_fraction: float
    seed: int
    noise: float
    image_size: int  # square side: H == W
    channels: int  # 1 (grayscale) or 3 (RGB)
    class_counts: dict[str, int]  # images per class, whole dataset (before augmentation)
    mean: list[float]  # per channel, train split, 0..1 scale
    std: list[float]  # per channel, train split, 0..1 scale
