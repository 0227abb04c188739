"""The request-id rule both services share, and the middleware that applies it, in-process."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest

from serving_service.logs import REQUEST_ID
from serving_service.middleware import (
    REQUEST_ID_HEADER,
    TelemetryMiddleware,
    new_request_id,
    request_id_from,
)

NEW_ID = re.compile(r"[0-9a-f]{32}")


def _scope(*headers: tuple[bytes, bytes]) -> dict[str, Any]:
    return {"type": "http", "method": "GET", "path": "/health", "headers": list(headers)}


@pytest.mark.parametrize(
    "given",
    ["model_management/manual__2026-11-26T08:00:00+00:00", "9f3a", "a.b:c/d+e=f@g~h-i", "x" * 200],
)
def test_a_sane_request_id_is_kept(given: str) -> None:
    scope = _scope((b"accept", b"*/*"), (b"x-request-id", given.encode()))
    assert request_id_from(scope) == given


@pytest.mark.parametrize("given", [b"two words", b"", b"x" * 201, b"caf\xc3\xa9", b"a\nb", b"<id>"])
def test_anything_else_gets_a_new_id(given: bytes) -> None:
    assert NEW_ID.fullmatch(request_id_from(_scope((b"x-request-id", given))))


def test_without_the_header_the_id_is_new_each_time() -> None:
    assert NEW_ID.fullmatch(request_id_from(_scope()))
    assert new_request_id() != new_request_id()
    assert REQUEST_ID_HEADER == "X-Request-ID"


def test_the_id_is_in_the_logs_context_while_handling_and_echoed() -> None:
    seen: list[str | None] = []
    sent: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(REQUEST_ID.get())
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = _scope((b"x-request-id", b"run-1"))
    asyncio.run(TelemetryMiddleware(app)(scope, receive, send))
    assert seen == ["run-1"]
    assert (b"x-request-id", b"run-1") in sent[0]["headers"]
    assert REQUEST_ID.get() is None  # reset once the request is done
