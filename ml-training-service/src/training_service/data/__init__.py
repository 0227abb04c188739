"""Data stage: build, store and read versioned, content-hashed image dataset snapshots.

A snapshot is the exact train/test split a model is trained on, frozen on disk under
DATA_DIR/datasets/<id>/ as uint8 (N, C, H, W) .npy files, so a job (or a later audit) can
always say which images it used. Training reads it in batches (`Dataset.split(...).read`);
the model's input is float32 pixel / 255, (C, H, W).

Modules: info (DatasetInfo, limits, errors), snapshot (reading: Dataset, ImageSplit),
writer (streaming a source to disk), store (DatasetStore), build (build_dataset),
sources (ImageSource, digits), folder (ImageFolder trees), shapes (generated images),
archive (safe extraction of uploads), images (header checks and the shared preprocessing).
"""

from training_service.data.build import build_dataset
from training_service.data.images import IMAGE_SUFFIXES
from training_service.data.info import (
    MAX_IMAGE_SIZE,
    MIN_IMAGE_SIZE,
    DatasetError,
    DatasetInfo,
    DatasetLimits,
    DatasetNotFoundError,
    DatasetTooLargeError,
    Source,
    Split,
)
from training_service.data.snapshot import Dataset, ImageSplit
from training_service.data.sources import warm_up
from training_service.data.store import DatasetStore

__all__ = [
    "IMAGE_SUFFIXES",
    "MAX_IMAGE_SIZE",
    "MIN_IMAGE_SIZE",
    "Dataset",
    "DatasetError",
    "DatasetInfo",
    "DatasetLimits",
    "DatasetNotFoundError",
    "DatasetStore",
    "DatasetTooLargeError",
    "ImageSplit",
    "Source",
    "Split",
    "build_dataset",
    "warm_up",
]
