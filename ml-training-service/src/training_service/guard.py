"""The pure ASGI guard in front of every route: the Host header check and the body cap.

`ALLOWED_HOSTS` (comma list of names, any port; `*` answers every name) answers any other
Host header with 400 before the app runs. `MAX_BODY_BYTES` answers 413 when a request's
Content-Length is over it, without reading the body, and when a streamed (chunked) body
passes it, as soon as the chunk that crosses it arrives: nothing past the cap is read.
Archive uploads (multipart POST /v1/datasets) are left to their own, larger cap,
MAX_ARCHIVE_BYTES, which `api/uploads.py` enforces the same way while streaming to disk.
"""

from __future__ import annotations

import json

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

UPLOAD_PATH = "/v1/datasets"


def too_large(limit: int) -> str:
    return (
        f"request body is larger than MAX_BODY_BYTES={limit:,} bytes: send a smaller body "
        "(archives go as multipart uploads to POST /v1/datasets) or raise MAX_BODY_BYTES"
    )


class BodyTooLargeError(HTTPException):
    """Raised from `receive` once the body passes the cap; answered 413 by the guard."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, too_large(limit))


class RequestGuard:
    """400 for a Host not in ALLOWED_HOSTS, 413 for a body over MAX_BODY_BYTES."""

    def __init__(self, app: ASGIApp, max_body_bytes: int, hosts: frozenset[str] | None) -> None:
        self.app = app
        self.limit = max_body_bytes
        self.hosts = hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        if self.hosts is not None:
            host = host_name(headers)
            if host not in self.hosts:
                shown = "(none)" if host is None else host[:100]
                await answer(send, 400, f"Host '{shown}' is not in ALLOWED_HOSTS")
                return
        if _is_upload(scope, headers):
            await self.app(scope, receive, send)
            return
        limit = self.limit
        declared = _header(headers, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await answer(send, 413, too_large(limit))
            return
        received = 0
        started = False

        async def capped_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLargeError(limit)
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, capped_receive, watched_send)
        except BodyTooLargeError:
            if started:  # too late for a 413: let the server drop the connection
                raise
            await answer(send, 413, too_large(limit))


def _is_upload(scope: Scope, headers: list[tuple[bytes, bytes]]) -> bool:
    content_type = _header(headers, b"content-type") or b""
    return (
        scope["method"] == "POST"
        and scope["path"].rstrip("/") == UPLOAD_PATH
        and content_type.lower().startswith(b"multipart/form-data")
    )


async def answer(send: Send, status: int, detail: str) -> None:
    """A JSON error answer sent straight from the ASGI layer; the connection then closes."""
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    for key, value in headers:
        if key == name:
            return value
    return None


def host_name(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The Host header's name in lower case, port removed (IPv6 literals keep brackets)."""
    value = _header(headers, b"host")
    if value is None:
        return None
    host = value.decode("latin-1").strip().lower()
    if host.startswith("["):
        return host[: host.index("]") + 1] if "]" in host else host
    return host.rsplit(":", 1)[0] if ":" in host else host
