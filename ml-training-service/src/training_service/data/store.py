"""DatasetStore: snapshot directories under DATA_DIR/datasets, created atomically.

A snapshot is built in a hidden temporary directory beside the others (`.tmp-<id>`), its
info.json written last, then renamed to `<id>/`: a snapshot exists once its directory does,
and a failed or interrupted build leaves nothing (leftover `.tmp-*` directories of a crash
are removed when the store opens).
"""

from __future__ import annotations

import json
import re
import shutil
import uuid
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from training_service.data.info import DatasetInfo, DatasetNotFoundError, Split
from training_service.data.snapshot import INFO_FILE, Dataset, read_info
from training_service.data.sources import ImageSource
from training_service.data.writer import write_snapshot

_DATASET_ID = re.compile(r"^ds-[0-9a-f]{12}$")
_TMP_PREFIX = ".tmp-"


class DatasetStore:
    """Snapshots on disk: one directory per dataset id."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)

    def remove_leftovers(self) -> None:
        """Delete half-built snapshots a crash left behind (call once, before serving)."""
        for leftover in self.root.glob(f"{_TMP_PREFIX}ds-*"):
            shutil.rmtree(leftover, ignore_errors=True)

    def _directory(self, dataset_id: str) -> Path:
        # Ids come from URLs: only ids this store could have made may touch the filesystem.
        if not _DATASET_ID.match(dataset_id):
            raise DatasetNotFoundError(dataset_id)
        return self.root / dataset_id

    def create(
        self,
        source: ImageSource,
        *,
        source_name: str,
        path: str | None,
        test_fraction: float,
        seed: int,
        noise: float,
    ) -> Dataset:
        """Split and write `source` as a new snapshot; returns it, stored."""
        dataset_id = f"ds-{uuid.uuid4().hex[:12]}"
        building = self.root / f"{_TMP_PREFIX}{dataset_id}"
        building.mkdir()
        try:
            written = write_snapshot(
                source, building, test_fraction=test_fraction, seed=seed, noise=noise
            )
            info = DatasetInfo(
                dataset_id=dataset_id,
                source=source_name,
                path=path,
                n_train=written.n_train,
                n_test=written.n_test,
                classes=source.classes,
                image_shape=[source.image_size, source.image_size],
                sha256=written.sha256,
                created_at=datetime.now(UTC).isoformat(),
                test_fraction=test_fraction,
                seed=seed,
                noise=noise,
                image_size=source.image_size,
                channels=source.channels,
                class_counts=source.class_counts(),
                mean=written.mean,
                std=written.std,
            )
            (building / INFO_FILE).write_text(json.dumps(asdict(info), indent=1))
            building.rename(self._directory(dataset_id))
        except BaseException:
            shutil.rmtree(building, ignore_errors=True)
            raise
        return Dataset(info, self._directory(dataset_id))

    def save(self, dataset: Dataset) -> DatasetInfo:
        """Store a snapshot built elsewhere (another store's root); a no-op for its own."""
        target = self._directory(dataset.info.dataset_id)
        if target.resolve() == dataset.directory.resolve() or (target / INFO_FILE).is_file():
            return dataset.info
        copying = self.root / f"{_TMP_PREFIX}{dataset.info.dataset_id}"
        try:
            shutil.copytree(dataset.directory, copying)
            copying.rename(target)
        except BaseException:
            shutil.rmtree(copying, ignore_errors=True)
            raise
        return dataset.info

    def info(self, dataset_id: str) -> DatasetInfo:
        directory = self._directory(dataset_id)
        if not (directory / INFO_FILE).is_file():
            raise DatasetNotFoundError(dataset_id)
        return read_info(directory)

    def load(self, dataset_id: str) -> Dataset:
        return Dataset(self.info(dataset_id), self._directory(dataset_id))

    def samples(self, dataset_id: str, split: Split, limit: int) -> tuple[np.ndarray, list[str]]:
        """The first `limit` images of a split as float32 (N, C, H, W) plus their class names."""
        dataset = self.load(dataset_id)
        images = dataset.split(split)
        try:
            count = min(limit, len(images))
            pixels = images.read(np.arange(count))
            return pixels, [dataset.classes[int(i)] for i in images.labels[:count]]
        finally:
            images.close()
