"""Writing a snapshot: split a source, stream its images to .npy files, hash and measure them.

Images go to disk a chunk at a time (about 16 MB of uint8), so building a snapshot never
holds a split in memory; the content hash (classes, then each array's shape and bytes, in
file order) and the train split's pixel sums (exact, in integers) are updated as the
chunks pass. Everything is written into a directory the store renames into place.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from training_service.data.info import DatasetError
from training_service.data.snapshot import (
    IMAGES_FILE,
    LABELS_FILE,
    STATS_FILE,
    ImageSplit,
    write_npy_header,
)
from training_service.data.sources import ImageSource

CHUNK_BYTES = 16 << 20


@dataclass(frozen=True)
class Written:
    """What the writer learned: split sizes, content hash, per-channel mean and std."""

    n_train: int
    n_test: int
    sha256: str
    mean: list[float]
    std: list[float]


class PixelSums:
    """Exact per-pixel sums of uint8 images (int64), turned into 0..1 statistics."""

    def __init__(self, shape: tuple[int, int, int]) -> None:
        self.shape = shape
        self.total = np.zeros(shape, dtype=np.int64)
        self.squares = np.zeros(shape, dtype=np.int64)
        self.count = 0

    def add(self, images: np.ndarray) -> None:
        for start in range(0, len(images), 64):  # small int64 temporaries
            wide = images[start : start + 64].astype(np.int64)
            self.total += wide.sum(axis=0)
            self.squares += (wide * wide).sum(axis=0)
        self.count += len(images)

    def per_pixel(self) -> dict[str, list[float] | int]:
        n = max(self.count, 1)
        mean = self.total / (255.0 * n)
        var = np.maximum(self.squares / (255.0**2 * n) - mean**2, 0.0)
        return {
            "mean": [float(v) for v in mean.reshape(-1)],
            "std": [float(v) for v in np.sqrt(var).reshape(-1)],
            "count": self.count,
        }

    def per_channel(self) -> tuple[list[float], list[float]]:
        n = max(self.count * self.shape[1] * self.shape[2], 1)
        mean = self.total.sum(axis=(1, 2)) / (255.0 * n)
        var = np.maximum(self.squares.sum(axis=(1, 2)) / (255.0**2 * n) - mean**2, 0.0)
        return [round(float(v), 6) for v in mean], [round(float(v), 6) for v in np.sqrt(var)]


def split_indices(
    labels: np.ndarray, n_classes: int, test_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """A stratified, seeded train/test split of image indices."""
    from sklearn.model_selection import train_test_split

    try:
        train, test = train_test_split(
            np.arange(len(labels)), test_size=test_fraction, random_state=seed, stratify=labels
        )
    except ValueError as exc:
        raise DatasetError(
            f"cannot split {len(labels)} images of {n_classes} classes with "
            f"test_fraction={test_fraction}: {exc}; add images or change test_fraction"
        ) from exc
    return np.asarray(train, dtype=np.int64), np.asarray(test, dtype=np.int64)


def _chunks(indices: np.ndarray, row_bytes: int) -> list[np.ndarray]:
    size = max(1, CHUNK_BYTES // row_bytes)
    return [indices[i : i + size] for i in range(0, len(indices), size)]


def write_snapshot(
    source: ImageSource,
    directory: Path,
    *,
    test_fraction: float,
    seed: int,
    noise: float,
) -> Written:
    """Write both splits and input_stats.json into `directory` (the caller writes info.json).

    With noise > 0 the train split gets a second, noisy copy of every image (Gaussian,
    sigma = noise on the 0..1 scale, rounded and clipped); the test split never does.
    """
    train, test = split_indices(source.labels, len(source.classes), test_fraction, seed)
    shape = (source.channels, source.image_size, source.image_size)
    row_bytes = int(np.prod(shape))
    digest = hashlib.sha256(json.dumps(source.classes).encode())
    sums = PixelSums(shape)
    sizes = {}
    for name, indices in (("train", train), ("test", test)):
        copies = 2 if name == "train" and noise > 0 else 1
        labels = np.tile(source.labels[indices], copies)
        images_path = directory / IMAGES_FILE.format(split=name)
        with images_path.open("wb") as file:
            write_npy_header(file, np.dtype(np.uint8), (len(labels), *shape))
            digest.update(str((len(labels), *shape)).encode())
            for chunk in _chunks(indices, row_bytes):
                images = np.ascontiguousarray(source.render(chunk), dtype=np.uint8)
                if images.shape != (len(chunk), *shape):
                    raise RuntimeError(f"source rendered {images.shape}, not {shape}")
                _emit(file, images, digest, sums if name == "train" else None)
            if copies == 2:
                file.flush()
                clean_labels = labels[: len(indices)]
                _write_noisy_copy(file, images_path, clean_labels, noise, seed, digest, sums)
        np.save(directory / LABELS_FILE.format(split=name), labels)
        digest.update(str(labels.shape).encode())
        digest.update(labels.tobytes())
        sizes[name] = len(labels)
    (directory / STATS_FILE).write_text(json.dumps(sums.per_pixel()))
    mean, std = sums.per_channel()
    return Written(sizes["train"], sizes["test"], digest.hexdigest(), mean, std)


def _emit(file: BinaryIO, images: np.ndarray, digest: Any, sums: PixelSums | None) -> None:
    data = images.tobytes()
    file.write(data)
    digest.update(data)
    if sums is not None:
        sums.add(images)


def _write_noisy_copy(
    file: BinaryIO,
    images_path: Path,
    labels: np.ndarray,
    noise: float,
    seed: int,
    digest: Any,
    sums: PixelSums,
) -> None:
    """Append a noisy copy of the clean rows just written, reading them back a chunk at a time."""
    clean = ImageSplit(images_path, np.zeros(2 * len(labels), dtype=np.int64))
    rng = np.random.default_rng(seed)
    try:
        for chunk in _chunks(np.arange(len(labels)), int(np.prod(clean.image_shape))):
            pixels = clean.read(chunk)
            noisy = np.clip(pixels + rng.normal(0.0, noise, pixels.shape), 0.0, 1.0)
            _emit(file, np.rint(noisy * 255.0).astype(np.uint8), digest, sums)
    finally:
        clean.close()
