"""ImageSource, what every source hands the snapshot writer, and the digits source.

A source is its class names, one label per image, and `render(indices)`: those images as
uint8 (B, C, H, W) at the snapshot's size. The writer asks for a chunk at a time, so a
source never has to hold every image decoded at once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from training_service.data.info import MAX_IMAGE_SIZE, MIN_IMAGE_SIZE, DatasetError


@dataclass(frozen=True)
class ImageSource:
    classes: list[str]
    labels: np.ndarray  # int64 (N,)
    image_size: int
    channels: int
    render: Callable[[np.ndarray], np.ndarray]  # indices -> uint8 (B, C, H, W)

    def class_counts(self) -> dict[str, int]:
        counts = np.bincount(self.labels, minlength=len(self.classes))
        return {name: int(count) for name, count in zip(self.classes, counts, strict=True)}


def check_image_options(image_size: int | None, channels: int | None) -> None:
    if image_size is not None and not MIN_IMAGE_SIZE <= image_size <= MAX_IMAGE_SIZE:
        raise DatasetError(
            f"image_size {image_size} is out of range: use {MIN_IMAGE_SIZE}..{MAX_IMAGE_SIZE}"
        )
    if channels is not None and channels not in (1, 3):
        raise DatasetError(f"channels {channels} is not supported: use 1 (gray) or 3 (RGB)")


@lru_cache(maxsize=1)
def digits_pixels() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled 8x8 digits as uint8 (1797, 1, 8, 8): round(v / 16 * 255)."""
    from sklearn.datasets import load_digits  # imported on use: keeps service start fast

    digits = load_digits()
    pixels = np.rint(digits.images / 16.0 * 255.0).astype(np.uint8)[:, None, :, :]
    pixels.setflags(write=False)
    return pixels, digits.target.astype(np.int64)


def digits_source(image_size: int | None, channels: int | None) -> ImageSource:
    """The digits as they are: 8x8, one channel (other sizes would only blur them)."""
    if image_size not in (None, 8) or channels not in (None, 1):
        raise DatasetError("source 'digits' is 8x8 grayscale: leave image_size and channels out")
    pixels, labels = digits_pixels()
    return ImageSource(
        classes=[str(c) for c in range(10)],
        labels=labels,
        image_size=8,
        channels=1,
        render=lambda indices: pixels[indices],
    )


def warm_up() -> None:
    """Import scikit-learn and parse the digits once, so the first request does not wait."""
    from sklearn.model_selection import train_test_split  # noqa: F401

    digits_pixels()
