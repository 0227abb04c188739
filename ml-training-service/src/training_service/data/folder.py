"""ImageFolder trees (`<class>/<image>`): the server-side `folder` source and extracted archives.

Symbolic links are never followed, neither class folders nor files: a link could lead out of
DATA_DIR. Hidden entries (`.DS_Store`, `._x.jpg`) are skipped. Every image's header is read
first (size limit, default size and colour); pixels are decoded a chunk at a time later.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import numpy as np

from training_service.data.images import IMAGE_SUFFIXES, decode, read_header
from training_service.data.info import DatasetError, DatasetLimits, DatasetTooLargeError
from training_service.data.sources import ImageSource, check_image_options

#: A default image size (the data's most common shorter side) is clamped to this range.
DEFAULT_SIZE_RANGE = (8, 224)


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


def _entries(folder: Path) -> list[os.DirEntry[str]]:
    with os.scandir(folder) as it:
        return sorted((e for e in it if not e.name.startswith(".")), key=lambda e: e.name)


def scan_tree(root: Path, label: str) -> list[tuple[str, list[Path]]]:
    """(class name, image files) per class folder of `root`, symlinks skipped; `label` names
    the tree in errors ("folder 'x'", "archive 'y.zip'")."""
    classes = [
        (entry.name, Path(entry.path))
        for entry in _entries(root)
        if entry.is_dir(follow_symlinks=False)
    ]
    if len(classes) < 2:
        raise DatasetError(
            f"{label} must contain at least 2 class folders (<class_name>/<image>), "
            f"found {len(classes)}"
        )
    tree = []
    for name, folder in classes:
        files = [
            Path(entry.path)
            for entry in _entries(folder)
            if entry.is_file(follow_symlinks=False)
            and Path(entry.name).suffix.lower() in IMAGE_SUFFIXES
        ]
        if not files:
            raise DatasetError(
                f"class folder '{name}' holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})"
            )
        tree.append((name, files))
    return tree


def check_image_count(count: int, limits: DatasetLimits) -> None:
    if count > limits.max_dataset_images:
        raise DatasetTooLargeError(
            f"{count:,} images is over MAX_DATASET_IMAGES={limits.max_dataset_images:,}: "
            "use fewer images or raise MAX_DATASET_IMAGES"
        )


def tree_source(
    root: Path,
    label: str,
    *,
    image_size: int | None,
    channels: int | None,
    limits: DatasetLimits,
) -> ImageSource:
    """An ImageFolder tree as a source; defaults come from the images' headers."""
    check_image_options(image_size, channels)
    tree = scan_tree(root, label)
    check_image_count(sum(len(files) for _, files in tree), limits)
    files = [(file, index) for index, (_, paths) in enumerate(tree) for file in paths]
    names = [f"{file.parent.name}/{file.name}" for file, _ in files]
    sides: Counter[int] = Counter()
    all_gray = True
    for (file, _), name in zip(files, names, strict=True):
        header = read_header(file, name, limits.max_image_pixels)
        sides[min(header.width, header.height)] += 1
        all_gray = all_gray and header.gray
    if image_size is None:
        low, high = DEFAULT_SIZE_RANGE
        image_size = min(max(sides.most_common(1)[0][0], low), high)
    if channels is None:
        channels = 1 if all_gray else 3
    size, depth = image_size, channels

    def render(indices: np.ndarray) -> np.ndarray:
        return np.stack(
            [
                decode(files[i][0], names[i], size, depth, limits.max_image_pixels)
                for i in indices.tolist()
            ]
        )

    return ImageSource(
        classes=[name for name, _ in tree],
        labels=np.asarray([index for _, index in files], dtype=np.int64),
        image_size=size,
        channels=depth,
        render=render,
    )
