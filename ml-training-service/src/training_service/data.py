"""Data stage: build, store and load versioned, content-hashed dataset snapshots.

A snapshot is the exact train/test split a model is trained on, frozen on disk under
DATA_DIR/datasets, so a job (or a later audit) can always say which images it used.
Images are float32 arrays (N, 1, H, W) scaled to 0..1, the model's input format.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Literal

import numpy as np

Source = Literal["digits", "folder"]
Split = Literal["train", "test"]

#: Every snapshot has the shape of scikit-learn's digits: folder images are resized to it.
IMAGE_SHAPE: tuple[int, int] = (8, 8)
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif"}
_DATASET_ID = re.compile(r"^ds-[0-9a-f]{12}$")


class DatasetError(ValueError):
    """The request cannot produce a dataset; the message says what to change."""


class DatasetNotFoundError(KeyError):
    """No snapshot with this id exists."""


@dataclass(frozen=True)
class DatasetInfo:
    """What a snapshot is, without its arrays (the API's dataset body)."""

    dataset_id: str
    source: str
    path: str | None
    n_train: int
    n_test: int
    classes: list[str]
    image_shape: list[int]
    sha256: str
    created_at: str
    test_fraction: float
    seed: int
    noise: float


@dataclass(frozen=True)
class Dataset:
    """A snapshot with its arrays: x_* float32 (N, 1, H, W) in 0..1, y_* int64 class indices."""

    info: DatasetInfo
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    @property
    def classes(self) -> list[str]:
        return self.info.classes


def input_stats(images: np.ndarray) -> dict[str, list[float] | int]:
    """Per-pixel reference statistics of (N, 1, H, W) images in the model's input scale.

    `{"mean": [H*W], "std": [H*W], "count": N}`, pixels flattened row-major, population std.
    Logged with the model so the serving side can score input drift against the data the
    model was trained on, without access to the data set itself.
    """
    flat = images.reshape(len(images), -1).astype(np.float64)  # float64: exact sums
    return {
        "mean": [float(v) for v in flat.mean(axis=0)],
        "std": [float(v) for v in flat.std(axis=0)],
        "count": len(images),
    }


@lru_cache(maxsize=1)
def load_digits_images() -> tuple[np.ndarray, np.ndarray, list[str]]:
    """scikit-learn's bundled 8x8 digits (1,797 images, no download), scaled to 0..1.

    Cached: callers get the same arrays and must not modify them in place.
    """
    from sklearn.datasets import load_digits  # imported on use: keeps service start fast

    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)[:, None, :, :]
    return images, digits.target.astype(np.int64), [str(c) for c in range(10)]


def warm_up() -> None:
    """Import scikit-learn and parse the digits once, so the first request does not wait."""
    from sklearn.model_selection import train_test_split  # noqa: F401

    load_digits_images()


def load_folder_images(root: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """An ImageFolder tree (root/<class_name>/*.png), grayscale, resized to IMAGE_SHAPE."""
    from PIL import Image, UnidentifiedImageError  # only folder datasets need Pillow

    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(class_dirs) < 2:
        raise DatasetError(
            f"folder '{root.name}' must contain at least 2 class sub-folders "
            f"(<class_name>/<image>.png), found {len(class_dirs)}"
        )
    height, width = IMAGE_SHAPE
    images: list[np.ndarray] = []
    labels: list[int] = []
    for index, class_dir in enumerate(class_dirs):
        files = sorted(p for p in class_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise DatasetError(f"class folder '{class_dir.name}' holds no .png/.jpg images")
        for file in files:
            try:
                with Image.open(file) as image:
                    gray = image.convert("L").resize((width, height), Image.Resampling.BILINEAR)
            except (UnidentifiedImageError, OSError) as exc:
                raise DatasetError(
                    f"'{class_dir.name}/{file.name}' is not a readable image"
                ) from exc
            images.append(np.asarray(gray, dtype=np.float32) / 255.0)
            labels.append(index)
    x = np.stack(images)[:, None, :, :].astype(np.float32)
    return x, np.asarray(labels, dtype=np.int64), [p.name for p in class_dirs]


def resolve_folder(data_dir: Path, path: str | None) -> Path:
    """The folder a request names, which must stay inside DATA_DIR (no escaping via ..)."""
    if not path:
        raise DatasetError("source 'folder' needs 'path': a folder relative to DATA_DIR")
    base = data_dir.resolve()
    root = (base / path).resolve()
    if not root.is_relative_to(base):
        raise DatasetError(f"path '{path}' leaves DATA_DIR; give a folder relative to DATA_DIR")
    if not root.is_dir():
        raise DatasetError(f"path '{path}' is not a folder under DATA_DIR")
    return root


def content_sha256(
    classes: list[str], arrays: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
) -> str:
    """Hash of what a model learns from: class names, then each split's shape and bytes."""
    digest = hashlib.sha256(json.dumps(classes).encode())
    for array in arrays:
        digest.update(str(array.shape).encode())
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def build_dataset(
    source: Source,
    *,
    data_dir: Path,
    path: str | None = None,
    test_fraction: float = 0.2,
    seed: int = 42,
    noise: float = 0.0,
) -> Dataset:
    """Load a source, split it (stratified, seeded) and optionally augment the training split.

    With noise > 0 the training split gets a second, noisy copy of every image (Gaussian,
    sigma = noise, clipped to 0..1); the test split is never augmented.
    """
    from sklearn.model_selection import train_test_split

    if source == "digits":
        x, y, classes = load_digits_images()
    elif source == "folder":
        x, y, classes = load_folder_images(resolve_folder(data_dir, path))
    else:  # the API's schema already rejects this; kept for direct callers
        raise DatasetError(f"unknown source '{source}'; use 'digits' or 'folder'")
    try:
        x_train, x_test, y_train, y_test = train_test_split(
            x, y, test_size=test_fraction, random_state=seed, stratify=y
        )
    except ValueError as exc:
        raise DatasetError(
            f"cannot split {len(y)} images of {len(classes)} classes with "
            f"test_fraction={test_fraction}: {exc}; add images or change test_fraction"
        ) from exc
    if noise > 0:
        rng = np.random.default_rng(seed)
        noisy = np.clip(x_train + rng.normal(0.0, noise, x_train.shape), 0.0, 1.0)
        x_train = np.concatenate([x_train, noisy.astype(np.float32)])
        y_train = np.concatenate([y_train, y_train])
    arrays = (x_train, y_train, x_test, y_test)
    info = DatasetInfo(
        dataset_id=f"ds-{uuid.uuid4().hex[:12]}",
        source=source,
        path=path if source == "folder" else None,
        n_train=len(y_train),
        n_test=len(y_test),
        classes=classes,
        image_shape=list(IMAGE_SHAPE),
        sha256=content_sha256(classes, arrays),
        created_at=datetime.now(UTC).isoformat(),
        test_fraction=test_fraction,
        seed=seed,
        noise=noise,
    )
    return Dataset(info, x_train, y_train, x_test, y_test)


class DatasetStore:
    """Snapshots on disk: <id>.npz (arrays) beside <id>.json (info), written atomically."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)

    def _paths(self, dataset_id: str) -> tuple[Path, Path]:
        # Ids come from URLs: only ids this store could have made may touch the filesystem.
        if not _DATASET_ID.match(dataset_id):
            raise DatasetNotFoundError(dataset_id)
        return self.root / f"{dataset_id}.npz", self.root / f"{dataset_id}.json"

    def save(self, dataset: Dataset) -> DatasetInfo:
        arrays_path, info_path = self._paths(dataset.info.dataset_id)
        tmp_arrays = arrays_path.with_suffix(".tmp.npz")
        np.savez(
            tmp_arrays,
            x_train=dataset.x_train,
            y_train=dataset.y_train,
            x_test=dataset.x_test,
            y_test=dataset.y_test,
        )
        tmp_arrays.replace(arrays_path)
        # The info file is written last: a snapshot exists once its info does.
        tmp_info = info_path.with_suffix(".tmp")
        tmp_info.write_text(json.dumps(dataset.info.__dict__, indent=1))
        tmp_info.replace(info_path)
        return dataset.info

    def info(self, dataset_id: str) -> DatasetInfo:
        _, info_path = self._paths(dataset_id)
        if not info_path.is_file():
            raise DatasetNotFoundError(dataset_id)
        return DatasetInfo(**json.loads(info_path.read_text()))

    def load(self, dataset_id: str) -> Dataset:
        info = self.info(dataset_id)
        arrays_path, _ = self._paths(dataset_id)
        with np.load(arrays_path) as arrays:
            return Dataset(
                info, arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"]
            )

    def samples(self, dataset_id: str, split: Split, limit: int) -> tuple[np.ndarray, list[str]]:
        """The first `limit` images of a split as (N, H, W) plus their class names."""
        dataset = self.load(dataset_id)
        x, y = (
            (dataset.x_test, dataset.y_test)
            if split == "test"
            else (
                dataset.x_train,
                dataset.y_train,
            )
        )
        return x[:limit, 0], [dataset.classes[int(i)] for i in y[:limit]]
