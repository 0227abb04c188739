"""Reading a snapshot: ImageSplit reads only the rows it is asked for, straight from the .npy.

A snapshot directory holds, per split, `<split>_images.npy` (uint8, (N, C, H, W)) and
`<split>_labels.npy` (int64, (N,)), then `input_stats.json` and `info.json` (written last).
`ImageSplit.read` finds the payload's offset in the .npy header once and then reads each
requested row with `os.pread`: no whole-file load, no memory map, no shared file position, so
a split can be handed to DataLoader worker processes (forked or pickled) safely.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from training_service.data.info import DatasetInfo, Split

IMAGES_FILE, LABELS_FILE = "{split}_images.npy", "{split}_labels.npy"
INFO_FILE, STATS_FILE = "info.json", "input_stats.json"


def write_npy_header(file: BinaryIO, dtype: np.dtype, shape: tuple[int, ...]) -> None:
    """The .npy header of a C-ordered array; the caller then writes the raw rows."""
    header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": shape}
    np.lib.format.write_array_header_1_0(file, header)


def read_npy_header(path: Path) -> tuple[tuple[int, ...], np.dtype, int]:
    """(shape, dtype, payload offset) of a .npy file, reading its header only."""
    with path.open("rb") as file:
        version = np.lib.format.read_magic(file)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(file)
        else:
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(file)
        if fortran:
            raise ValueError(f"{path} is Fortran-ordered; snapshots are C-ordered")
        return tuple(shape), dtype, file.tell()


class ImageSplit:
    """One split of a snapshot: labels in memory, images read from disk in batches."""

    def __init__(self, images_path: Path, labels: np.ndarray) -> None:
        self.path = images_path
        self.labels = labels
        shape, dtype, self._offset = read_npy_header(images_path)
        if dtype != np.uint8 or len(shape) != 4 or shape[0] != len(labels):
            raise ValueError(f"{images_path}: expected uint8 (N, C, H, W) for {len(labels)} labels")
        self.image_shape: tuple[int, int, int] = (shape[1], shape[2], shape[3])
        self._row_bytes = shape[1] * shape[2] * shape[3]
        self._fd: int | None = None
        self._fd_pid = -1

    def __len__(self) -> int:
        return len(self.labels)

    def __getstate__(self) -> dict[str, Any]:
        # A pickled split (spawned DataLoader workers) opens its own descriptor.
        state = dict(self.__dict__)
        state["_fd"], state["_fd_pid"] = None, -1
        return state

    def __del__(self) -> None:
        self.close()

    def close(self) -> None:
        if self._fd is not None and self._fd_pid == os.getpid():
            os.close(self._fd)
        self._fd = None

    def _descriptor(self) -> int:
        # One descriptor per process: a forked worker opens its own (pread is position-free,
        # but a parent closing its descriptor must not pull the file from under a child).
        if self._fd is None or self._fd_pid != os.getpid():
            self._fd = os.open(self.path, os.O_RDONLY)
            self._fd_pid = os.getpid()
        return self._fd

    def read_uint8(self, indices: np.ndarray | list[int]) -> np.ndarray:
        """Rows `indices` as stored: uint8 (B, C, H, W), in the order asked."""
        wanted = np.asarray(indices, dtype=np.int64).reshape(-1)
        if wanted.size and (wanted.min() < 0 or wanted.max() >= len(self)):
            raise IndexError(f"indices out of range 0..{len(self) - 1}")
        out = np.empty((wanted.size, *self.image_shape), dtype=np.uint8)
        flat = out.reshape(wanted.size, self._row_bytes)
        fd, size = self._descriptor(), self._row_bytes
        order = np.argsort(wanted, kind="stable")
        position = 0
        while position < wanted.size:  # consecutive rows are read with one pread
            end = position + 1
            while end < wanted.size and wanted[order[end]] == wanted[order[end - 1]] + 1:
                end += 1
            first = int(wanted[order[position]])
            data = os.pread(fd, size * (end - position), self._offset + first * size)
            if len(data) != size * (end - position):
                raise OSError(f"{self.path} is truncated")
            flat[order[position:end]] = np.frombuffer(data, dtype=np.uint8).reshape(-1, size)
            position = end
        return out

    def read(self, indices: np.ndarray | list[int]) -> np.ndarray:
        """Rows `indices` in the model's input format: float32 (B, C, H, W), 0..1."""
        return self.read_uint8(indices).astype(np.float32) / np.float32(255.0)


@dataclass(frozen=True)
class Dataset:
    """A stored snapshot: its info and the directory its splits are read from."""

    info: DatasetInfo
    directory: Path

    @property
    def classes(self) -> list[str]:
        return self.info.classes

    def split(self, name: Split) -> ImageSplit:
        if name not in ("train", "test"):
            raise ValueError(f"unknown split '{name}'; use 'train' or 'test'")
        labels = np.load(self.directory / LABELS_FILE.format(split=name))
        return ImageSplit(self.directory / IMAGES_FILE.format(split=name), labels)

    def input_stats(self) -> dict[str, Any]:
        """Per-pixel `{"mean": [C*H*W], "std": [...], "count": N}` of the train split, 0..1."""
        stats: dict[str, Any] = json.loads((self.directory / STATS_FILE).read_text())
        return stats


def read_info(directory: Path) -> DatasetInfo:
    return DatasetInfo(**json.loads((directory / INFO_FILE).read_text()))
