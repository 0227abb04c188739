"""The body of `POST /v1/predict/images`: image files and options, from either encoding.

- `multipart/form-data`: one or more parts named `files` (their file names name the images);
  options as query parameters (`?top_k=3&version=7`) or as form fields of the same names.
- `application/json`: `{"images": [{"name": "a.png", "data": "<base64>"}], "top_k": 3,
  "version": "7"}`; `data` may also be a `data:image/png;base64,...` URL; query parameters
  work too, the body wins.

The body is already in memory (the fast path reads it whole), so its parts are cut out with
`bytes.find` (`_parts`); python-multipart parses the header parameters (quoted file names).
Errors are `ImageRejected` with the status and a detail that says what to fix.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

import orjson
from python_multipart.multipart import parse_options_header

from serving_service.images import ImageRejected

DEFAULT_TOP_K = 5
MAX_TOP_K = 100
FILES_FIELD = "files"


@dataclass(frozen=True)
class ImageUpload:
    name: str
    data: bytes
    content_type: str | None = None


@dataclass(frozen=True)
class ImageRequest:
    images: list[ImageUpload]
    top_k: int
    version: str | None


def parse_image_request(
    body: bytes, content_type: str | None, query: bytes, max_images: int
) -> ImageRequest:
    """The images (in the order sent) and options of a request, or `ImageRejected`."""
    options: dict[str, Any] = {k: v[-1] for k, v in parse_qs(query.decode("latin-1")).items()}
    mime, params = parse_options_header(content_type or "")
    if mime == b"multipart/form-data":
        boundary = params.get(b"boundary")
        if not boundary:
            raise ImageRejected(422, "multipart/form-data needs a boundary parameter")
        images, fields = _multipart(body, boundary, max_images)
        options.update(fields)
    elif mime == b"application/json":
        images = _json_images(body, options, max_images)
    else:
        raise ImageRejected(
            415,
            "send multipart/form-data with one part named 'files' per image, or "
            'application/json {"images": [{"name": ..., "data": <base64>}]}',
        )
    if not images:
        raise ImageRejected(
            422, "no images: send parts named 'files' (multipart) or a non-empty 'images' (JSON)"
        )
    version = options.get("version")
    top_k = _top_k(options.get("top_k"))
    return ImageRequest(images, top_k, None if version is None else str(version))


def _too_many(max_images: int) -> ImageRejected:
    return ImageRejected(
        413, f"more than MAX_IMAGES_PER_REQUEST={max_images} images; split the request"
    )


def _top_k(value: Any) -> int:
    if value is None:
        return DEFAULT_TOP_K
    try:
        k = int(value)
        if isinstance(value, bool) or (isinstance(value, float) and value != k):
            raise ValueError
    except (TypeError, ValueError):
        raise ImageRejected(
            422, f"top_k must be an integer 1..{MAX_TOP_K}; got {value!r}"
        ) from None  # noqa: E501
    if not 1 <= k <= MAX_TOP_K:
        raise ImageRejected(422, f"top_k must be between 1 and {MAX_TOP_K}; got {k}")
    return k


def _json_images(body: bytes, options: dict[str, Any], max_images: int) -> list[ImageUpload]:
    try:
        request = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ImageRejected(422, f"body is not valid JSON ({exc})") from exc
    if not isinstance(request, dict) or not isinstance(request.get("images"), list):
        raise ImageRejected(422, 'body needs \'images\': a list of {"name", "data"} objects')
    for key in ("top_k", "version"):
        if request.get(key) is not None:
            options[key] = request[key]
    entries = request["images"]
    if len(entries) > max_images:
        raise _too_many(max_images)
    images = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("data"), str):
            raise ImageRejected(422, f"images[{i}] must be an object with 'data': base64 text")
        name = str(entry.get("name") or f"images[{i}]")
        data = entry["data"]
        if data.startswith("data:"):
            data = data.partition(",")[2]
        try:
            raw = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ImageRejected(422, f"image '{name}': 'data' is not valid base64 ({exc})") from exc
        images.append(ImageUpload(name, raw))
    return images


def _multipart(
    body: bytes, boundary: bytes, max_images: int
) -> tuple[list[ImageUpload], dict[str, str]]:
    """File parts named `files` in order, and the text fields (`top_k`, `version`)."""
    images: list[ImageUpload] = []
    fields: dict[str, str] = {}
    for headers, content in _parts(body, boundary):
        _, disposition = parse_options_header(headers.get(b"content-disposition", b""))
        name = disposition.get(b"name", b"").decode("utf-8", "replace")
        filename = disposition.get(b"filename")
        if name == FILES_FIELD:
            if len(images) == max_images:
                raise _too_many(max_images)
            label = filename.decode("utf-8", "replace") if filename else f"files[{len(images)}]"
            declared = headers.get(b"content-type")
            images.append(
                ImageUpload(label, content, declared.decode("latin-1") if declared else None)
            )
        elif name in ("top_k", "version") and filename is None:
            fields[name] = content.decode("utf-8", "replace")
        else:
            raise ImageRejected(
                422, f"unexpected multipart part '{name}': send images as parts named 'files'"
            )
    return images, fields


def _parts(body: bytes, boundary: bytes) -> Iterator[tuple[dict[bytes, bytes], bytes]]:
    """(headers, content) of each part of a whole multipart body (RFC 7578, RFC 2046 §5.1).

    The body is in memory, so each part is found with `bytes.find` on the delimiter
    (CRLF "--" boundary), which is all a streaming parser does byte by byte.
    """
    delimiter = b"--" + boundary
    pos = body.find(delimiter)
    if pos < 0:
        raise ImageRejected(422, "the multipart body has no part with the declared boundary")
    pos += len(delimiter)
    while not body.startswith(b"--", pos):  # the close delimiter ends the body
        line_end = body.find(b"\r\n", pos)
        head_end = body.find(b"\r\n\r\n", line_end)
        end = body.find(b"\r\n" + delimiter, head_end + 4)
        if line_end < 0 or head_end < 0 or end < 0:
            raise ImageRejected(422, "the multipart body is cut short: a part is not closed")
        headers = {}
        for line in body[line_end + 2 : head_end].split(b"\r\n"):
            key, sep, value = line.partition(b":")
            if not sep:
                raise ImageRejected(422, f"the multipart body has a bad header line {line[:80]!r}")
            headers[key.strip().lower()] = value.strip()
        yield headers, body[head_end + 4 : end]
        pos = end + 2 + len(delimiter)
