"""build_dataset: a request (source and options) -> a stored snapshot.

Sources: `digits` (scikit-learn's 8x8 digits), `folder` (an ImageFolder tree under DATA_DIR),
`shapes` (generated RGB shapes) and `archive` (an uploaded .zip/.tar.gz, see archive.py).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from training_service.data.archive import extract_archive
from training_service.data.folder import check_image_count, resolve_folder, tree_source
from training_service.data.info import DatasetError, DatasetLimits, Source
from training_service.data.shapes import shapes_source
from training_service.data.snapshot import Dataset
from training_service.data.sources import ImageSource, digits_source
from training_service.data.store import DatasetStore

UPLOAD_PREFIX = ".upload-"


def build_dataset(
    source: Source,
    *,
    data_dir: Path,
    path: str | None = None,
    test_fraction: float = 0.2,
    seed: int = 42,
    noise: float = 0.0,
    image_size: int | None = None,
    channels: int | None = None,
    count: int | None = None,
    archive: Path | None = None,
    archive_name: str | None = None,
    limits: DatasetLimits | None = None,
    store: DatasetStore | None = None,
) -> Dataset:
    """Build and store a snapshot (in `store`, by default DATA_DIR/datasets).

    `count` is for `shapes`; `archive` (a file on disk, named `archive_name` to the user) for
    `archive`; `path` for `folder`. image_size and channels default from the data.
    """
    limits = limits or DatasetLimits()
    store = store or DatasetStore(data_dir / "datasets")
    if path is not None and source != "folder":
        raise DatasetError(f"'path' is only for source 'folder'; remove it for '{source}'")
    if count is not None and source != "shapes":
        raise DatasetError(f"'count' is only for source 'shapes'; remove it for '{source}'")

    def create(images: ImageSource) -> Dataset:
        return store.create(
            images,
            source_name=source,
            path=path,
            test_fraction=test_fraction,
            seed=seed,
            noise=noise,
        )

    if source == "digits":
        return create(digits_source(image_size, channels))
    if source == "shapes":
        if count is not None:
            check_image_count(count, limits)
        return create(shapes_source(count, image_size, channels, seed))
    if source == "folder":
        root = resolve_folder(data_dir, path)
        label = f"folder '{path}'"
        return create(
            tree_source(root, label, image_size=image_size, channels=channels, limits=limits)
        )
    if source == "archive":
        if archive is None:
            raise DatasetError("source 'archive' needs an uploaded file (multipart part 'file')")
        # Extracted inside DATA_DIR (same disk as the snapshots), removed on every path.
        workdir = Path(tempfile.mkdtemp(prefix=UPLOAD_PREFIX, dir=data_dir))
        try:
            name = archive_name or archive.name
            tree = extract_archive(archive, workdir / "tree", name, limits)
            images = tree_source(
                tree, f"archive '{name}'", image_size=image_size, channels=channels, limits=limits
            )
            return create(images)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
    raise DatasetError(f"unknown source '{source}'; use 'digits', 'folder', 'shapes' or 'archive'")
