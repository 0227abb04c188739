"""Streaming multipart/form-data reader for archive uploads: the file part goes to disk.

The body is read as it arrives and never held whole: the part named `file` is written to
`<directory>/archive` while its bytes are counted (over MAX_ARCHIVE_BYTES is a 413 at once,
nothing more is read) and hashed (the Idempotency-Key fingerprint); the other parts are small
form fields. A Content-Length that already says the body is too large is refused unread.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from email.parser import HeaderParser
from pathlib import Path
from typing import BinaryIO

from fastapi import HTTPException, Request, status

FORM_OVERHEAD = 64 << 10  # multipart headers and form fields allowed beside the file
MAX_FIELD_BYTES, MAX_FIELDS, MAX_HEADER_BYTES = 1024, 32, 16 << 10


def _invalid(message: str) -> HTTPException:
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, message)


def too_large(limit: int) -> HTTPException:
    return HTTPException(
        status.HTTP_413_CONTENT_TOO_LARGE,
        f"the uploaded archive is larger than MAX_ARCHIVE_BYTES={limit:,} bytes: "
        "send a smaller archive or raise MAX_ARCHIVE_BYTES",
    )


@dataclass
class Upload:
    """A received upload: its form fields and the archive on disk with its size and hash."""

    path: Path
    filename: str | None = None
    size: int = 0
    fields: dict[str, str] = field(default_factory=dict)
    sha256: str = ""


class _Reader:
    """A push parser: feed() chunks; parts are dispatched as their ends are found."""

    def __init__(self, boundary: bytes, upload: Upload, max_file_bytes: int) -> None:
        self.delimiter = b"--" + boundary
        self.upload, self.max_file_bytes = upload, max_file_bytes
        self.buffer = bytearray()
        self.state = "preamble"
        self.part: str | None = None  # form field name, or "" for the file part
        self.value = bytearray()
        self.file: BinaryIO | None = None
        self.digest = hashlib.sha256()

    def feed(self, data: bytes) -> None:
        self.buffer += data
        while self.state != "done" and self._step():
            pass

    def _step(self) -> bool:
        if self.state == "preamble":
            at = self.buffer.find(self.delimiter)
            if at < 0:
                if len(self.buffer) > MAX_HEADER_BYTES:
                    raise _invalid("multipart body has no boundary line: check Content-Type")
                return False
            del self.buffer[: at + len(self.delimiter)]
            self.state = "delimiter"
            return True
        if self.state == "delimiter":
            if len(self.buffer) < 2:
                return False
            if self.buffer[:2] == b"--":
                self.state = "done"
                return False
            if self.buffer[:2] != b"\r\n":
                raise _invalid("malformed multipart body: a boundary line must end with CRLF")
            del self.buffer[:2]
            self.state = "headers"
            return True
        if self.state == "headers":
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buffer) > MAX_HEADER_BYTES:
                    raise _invalid("malformed multipart body: part headers too long")
                return False
            self._open_part(bytes(self.buffer[:end]).decode("utf-8", "replace"))
            del self.buffer[: end + 4]
            self.state = "data"
            return True
        needle = b"\r\n" + self.delimiter  # state "data"
        at = self.buffer.find(needle)
        if at >= 0:
            self._write(bytes(self.buffer[:at]))
            del self.buffer[: at + len(needle)]
            self._close_part()
            self.state = "delimiter"
            return True
        keep = len(needle) - 1  # a delimiter may straddle two chunks
        if len(self.buffer) > keep:
            self._write(bytes(self.buffer[:-keep]))
            del self.buffer[:-keep]
        return False

    def _open_part(self, headers: str) -> None:
        message = HeaderParser().parsestr(headers)
        name = message.get_param("name", header="content-disposition")
        filename = message.get_filename()
        if not isinstance(name, str):
            raise _invalid("every multipart part needs Content-Disposition: form-data; name=...")
        if name == "file":
            if self.file is not None or self.upload.filename is not None:
                raise _invalid("send one part 'file' (one archive per request)")
            self.upload.filename = filename or "upload"
            self.file = self.upload.path.open("xb")
            self.part = ""
            return
        if filename is not None:
            raise _invalid(f"part '{name}' is a file: only the part 'file' may be one")
        if name in self.upload.fields or len(self.upload.fields) >= MAX_FIELDS:
            raise _invalid(f"form field '{name}' is repeated or there are too many fields")
        self.part = name
        self.value = bytearray()

    def _write(self, data: bytes) -> None:
        if not data:
            return
        if self.part == "":
            if self.file is None:
                raise RuntimeError("the file part is being written but no file is open")
            self.upload.size += len(data)
            if self.upload.size > self.max_file_bytes:
                raise too_large(self.max_file_bytes)
            self.digest.update(data)
            self.file.write(data)
        else:
            self.value += data
            if len(self.value) > MAX_FIELD_BYTES:
                raise _invalid(f"form field '{self.part}' is longer than {MAX_FIELD_BYTES} bytes")

    def _close_part(self) -> None:
        if self.part == "" and self.file is not None:
            self.file.close()
            self.file = None
            self.upload.sha256 = self.digest.hexdigest()
        elif self.part:
            self.upload.fields[self.part] = self.value.decode("utf-8", "replace")
        self.part = None

    def close(self) -> None:
        if self.file is not None:
            self.file.close()


def _boundary(content_type: str) -> bytes:
    message = HeaderParser().parsestr(f"Content-Type: {content_type}\r\n\r\n")
    boundary = message.get_param("boundary")
    if not isinstance(boundary, str) or not 1 <= len(boundary) <= 200:
        raise _invalid("multipart/form-data needs a boundary parameter in Content-Type")
    return boundary.encode("latin-1", "replace")


async def receive_upload(request: Request, directory: Path, max_file_bytes: int) -> Upload:
    """Read a multipart body into `directory`; 413 over `max_file_bytes`, 422 if malformed."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_file_bytes + FORM_OVERHEAD:
        raise too_large(max_file_bytes)
    upload = Upload(path=directory / "archive")
    reader = _Reader(_boundary(request.headers.get("content-type", "")), upload, max_file_bytes)
    received = 0
    try:
        async for chunk in request.stream():
            received += len(chunk)
            if received > max_file_bytes + FORM_OVERHEAD:
                raise too_large(max_file_bytes)
            reader.feed(chunk)
    finally:
        reader.close()
    if reader.state != "done":
        raise _invalid("multipart body ended before its closing boundary: send it whole")
    if upload.filename is None:
        raise _invalid("the upload needs a part 'file' holding a .zip or .tar.gz archive")
    return upload
