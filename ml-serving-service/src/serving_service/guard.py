"""The pure ASGI guard in front of every route: Host header check and request body cap.

`ALLOWED_HOSTS` (comma list, any port; `*` answers every name) refuses other Host headers
with 400 before anything else runs. `MAX_BODY_BYTES` refuses with 413 a request whose
Content-Length exceeds it, before its body is read, and one whose streamed body passes it
(chunked), as soon as the chunk that crosses the cap arrives: nothing past the cap is read.
It wraps the scoring fast path and FastAPI alike, so every route is covered.
"""

from __future__ import annotations

import orjson
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_JSON = (b"content-type", b"application/json")


class BodyTooLarge(HTTPException):
    """Raised from `receive` when the body passes the cap; FastAPI routes answer it as 413."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, too_large(limit))


def too_large(limit: int) -> str:
    return (
        f"request body exceeds MAX_BODY_BYTES={limit} bytes; send smaller batches "
        "(or raise MAX_BODY_BYTES)"
    )


class RequestGuard:
    """400 for unknown Host names, 413 for bodies above the cap; the rest goes on."""

    def __init__(self, app: ASGIApp, max_body_bytes: int, hosts: frozenset[str] | None) -> None:
        self.app = app
        self.limit = max_body_bytes
        self.hosts = hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = scope["headers"]
        if self.hosts is not None:
            host = _host_name(headers)
            if host not in self.hosts:
                shown = host if host is not None else "(none)"
                await _answer(send, 400, f"Host '{shown[:100]}' is not in ALLOWED_HOSTS")
                return
        length = _content_length(headers)
        if length is not None and length > self.limit:
            await _answer(send, 413, too_large(self.limit))
            return
        limit = self.limit
        received = 0
        started = False

        async def capped_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, capped_receive, tracking_send)
        except BodyTooLarge:
            if started:
                raise
            await _answer(send, 413, too_large(limit))


async def _answer(send: Send, status: int, detail: str) -> None:
    body = orjson.dumps({"detail": detail})
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                _JSON,
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _content_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    for name, value in headers:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _host_name(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The Host header's name, lower case, without the port (IPv6 literals keep brackets)."""
    for name, value in headers:
        if name == b"host":
            host = value.decode("latin-1").strip().lower()
            if host.startswith("["):
                return host[: host.find("]") + 1] if "]" in host else host
            return host.rsplit(":", 1)[0] if ":" in host else host
    return None
