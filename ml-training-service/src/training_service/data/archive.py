"""Safe extraction of an uploaded .zip or .tar.gz ImageFolder tree into a private directory.

Refused, with the member named: absolute paths and `..` (zip-slip), symbolic and hard links,
devices and other special members, encrypted members, files that are not images by suffix,
and a layout other than `<class>/<image>` (optionally under one top-level folder). Sizes are
checked twice against MAX_ARCHIVE_UNCOMPRESSED_BYTES: the members' declared sizes before a
byte is written, then the bytes actually produced while extracting (a decompression bomb
that lies about its sizes is cut off). Hidden entries and macOS `__MACOSX/` are skipped.
The caller owns `dest` and removes it, on success and on failure.
"""

from __future__ import annotations

import re
import stat
import tarfile
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

from training_service.data.images import IMAGE_SUFFIXES
from training_service.data.info import DatasetError, DatasetLimits, DatasetTooLargeError

_CHUNK = 1 << 20
_LAYOUT = "archives hold <class>/<image> files, optionally under one top-level folder"


class _Budget:
    """Counts uncompressed bytes and image files against the limits."""

    def __init__(self, archive: str, limits: DatasetLimits) -> None:
        self.archive, self.limits = archive, limits
        self.declared = self.written = self.files = 0

    def too_large(self, size: int) -> DatasetTooLargeError:
        cap = self.limits.max_archive_uncompressed_bytes
        return DatasetTooLargeError(
            f"archive '{self.archive}' unpacks to more than {size:,} bytes, over "
            f"MAX_ARCHIVE_UNCOMPRESSED_BYTES={cap:,}: split the data or raise the setting"
        )

    def declare(self, size: int) -> None:
        self.declared += size
        self.files += 1
        if self.declared > self.limits.max_archive_uncompressed_bytes:
            raise self.too_large(self.declared)
        if self.files > self.limits.max_dataset_images:
            raise DatasetTooLargeError(
                f"archive '{self.archive}' holds more than "
                f"MAX_DATASET_IMAGES={self.limits.max_dataset_images:,} images: "
                "use fewer images or raise MAX_DATASET_IMAGES"
            )

    def copy(self, source: IO[bytes], target: Path, declared: int, member: str) -> None:
        produced = 0
        with target.open("xb") as out:
            while chunk := source.read(_CHUNK):
                produced += len(chunk)
                self.written += len(chunk)
                if produced > declared or self.written > self.limits.max_archive_uncompressed_bytes:
                    raise self.too_large(self.written)
                out.write(chunk)


def member_parts(raw: str) -> tuple[str, ...] | None:
    """The path of a member as safe parts, None for entries to skip; refuses escapes."""
    shown = raw[:200]
    name = raw.replace("\\", "/")
    if "\x00" in name or name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        raise DatasetError(f"archive member '{shown}' has an absolute path; {_LAYOUT}")
    parts = tuple(p for p in name.split("/") if p not in ("", "."))
    if ".." in parts:
        raise DatasetError(f"archive member '{shown}' leaves the archive (..); {_LAYOUT}")
    if not parts or parts[0] == "__MACOSX" or any(p.startswith(".") for p in parts):
        return None
    return parts


def _check_image_name(parts: tuple[str, ...], raw: str) -> None:
    if Path(parts[-1]).suffix.lower() not in IMAGE_SUFFIXES:
        raise DatasetError(
            f"archive member '{raw[:200]}' is not an image "
            f"({', '.join(sorted(IMAGE_SUFFIXES))}): remove it from the archive"
        )


Opener = Callable[[], IO[bytes]]


def _no_file() -> IO[bytes]:
    raise AssertionError("a folder member has no content")


def _zip_members(path: Path, budget: _Budget) -> Iterator[tuple[tuple[str, ...], int, Opener]]:
    with zipfile.ZipFile(path) as archive:
        files: list[tuple[tuple[str, ...], zipfile.ZipInfo | None]] = []
        for info in archive.infolist():  # every check before anything is written
            parts = member_parts(info.filename)
            kind = stat.S_IFMT(info.external_attr >> 16) if info.create_system == 3 else 0
            if kind and not (stat.S_ISREG(kind) or stat.S_ISDIR(kind)):
                _refuse_special(info.filename, "a symbolic link" if stat.S_ISLNK(kind) else None)
            if parts is None:
                continue
            if info.is_dir():
                files.append((parts, None))
                continue
            if info.flag_bits & 0x1:
                raise DatasetError(f"archive member '{info.filename}' is encrypted: remove it")
            _check_image_name(parts, info.filename)
            budget.declare(info.file_size)
            files.append((parts, info))
        for parts, member in files:
            if member is None:
                yield parts, -1, _no_file
            else:
                yield parts, member.file_size, lambda m=member: archive.open(m)  # type: ignore[misc]


def _refuse_special(raw: str, what: str | None) -> None:
    what = what or "a device, FIFO or other special file"
    raise DatasetError(
        f"archive member '{raw[:200]}' is {what}; archives may hold only folders and images"
    )


def _tar_members(path: Path, budget: _Budget) -> Iterator[tuple[tuple[str, ...], int, Opener]]:
    with tarfile.open(path, "r|*") as archive:  # streamed: checked as each member arrives
        for member in archive:
            if member.issym():
                _refuse_special(member.name, "a symbolic link")
            if member.islnk():
                _refuse_special(member.name, "a hard link")
            if not (member.isreg() or member.isdir()):
                _refuse_special(member.name, None)
            parts = member_parts(member.name)
            if parts is None:
                continue
            if member.isdir():
                yield parts, -1, _no_file
                continue
            _check_image_name(parts, member.name)
            budget.declare(member.size)
            yield parts, member.size, lambda m=member: archive.extractfile(m)  # type: ignore[misc]


def _kind(path: Path) -> str | None:
    with path.open("rb") as file:
        head = file.read(262)
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        return "zip"
    if head[:2] == b"\x1f\x8b" or head[257:262] == b"ustar":
        return "tar"
    return None


def extract_archive(path: Path, dest: Path, name: str, limits: DatasetLimits) -> Path:
    """Extract `path` (named `name` to the user) under `dest`; returns the tree's root."""
    kind = _kind(path)
    if kind is None:
        raise DatasetError(f"'{name}' is not a .zip or .tar.gz archive: upload one of those")
    budget = _Budget(name, limits)
    dest.mkdir()
    files: list[tuple[str, ...]] = []  # image files only
    members = _zip_members(path, budget) if kind == "zip" else _tar_members(path, budget)
    try:
        for parts, declared, opener in members:
            target = dest.joinpath(*parts)
            if declared < 0:  # a folder: made, so that an empty class is seen as one
                _make_folder(target, parts)
                continue
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                with opener() as source:
                    budget.copy(source, target, declared, "/".join(parts))
            except (FileExistsError, NotADirectoryError, IsADirectoryError):
                raise DatasetError(
                    f"archive member '{'/'.join(parts)}' appears twice or clashes with a folder"
                ) from None
            files.append(parts)
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as exc:
        if isinstance(exc, DatasetError):
            raise
        raise DatasetError(
            f"'{name}' is not a readable .zip or .tar.gz archive ({type(exc).__name__}): "
            "upload it again or repack it"
        ) from None
    return _tree_root(dest, files)


def _make_folder(target: Path, parts: tuple[str, ...]) -> None:
    try:
        target.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise DatasetError(f"archive folder '{'/'.join(parts)}' clashes with a file") from None


def _tree_root(dest: Path, files: list[tuple[str, ...]]) -> Path:
    tops = {parts[0] for parts in files}
    strip = 1 if len(tops) == 1 and all(len(parts) >= 3 for parts in files) else 0
    for parts in files:
        if len(parts) - strip != 2:
            raise DatasetError(f"archive member '{'/'.join(parts)}' is misplaced: {_LAYOUT}")
    return dest / next(iter(tops)) if strip else dest
