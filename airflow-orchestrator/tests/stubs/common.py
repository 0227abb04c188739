"""Middleware shared by the stub apps: exchange log, injected faults, Bearer auth.

Each exchange (request and response) goes to ``world.requests``, so the behaviour tests can
assert on what the DAGs sent and the contract checks can hold both sides to the providers'
OpenAPI documents.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from tests.stubs.world import TOKEN, World


def instrument(app: FastAPI, world: World, service: str, *, auth_posts: bool) -> None:
    """Record every request; answer 503 while a fault is armed; require Bearer on POSTs."""

    @app.middleware("http")
    async def record_and_fault(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        raw = await request.body()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        key = f"{request.method} {request.url.path}"
        exchange = {
            "service": service,
            "method": request.method,
            "path": request.url.path,
            "query": dict(request.query_params),
            "headers": dict(request.headers),
            "body": body,
        }
        with world.lock:
            world.requests.append(exchange)
            armed = world.faults.get(key, 0)
            if armed:
                world.faults[key] = armed - 1
        if armed:
            exchange["fault"] = True
            return _recorded(
                exchange,
                JSONResponse({"detail": f"stub fault on {key}: restarting"}, status_code=503),
            )
        bearer = request.headers.get("authorization")
        if auth_posts and request.method == "POST" and bearer != f"Bearer {TOKEN}":
            return _recorded(
                exchange,
                JSONResponse(
                    {"detail": "missing or wrong Bearer token; set API_TOKEN"}, status_code=401
                ),
            )
        return await _recorded_stream(exchange, await call_next(request))


def _recorded(exchange: dict[str, Any], response: Response) -> Response:
    exchange["status"] = response.status_code
    exchange["response"] = _decode(bytes(response.body), response.media_type)
    return response


async def _recorded_stream(exchange: dict[str, Any], response: Any) -> Response:
    """Read the streamed answer of call_next, log it, and send the same bytes on."""
    content = b"".join([chunk async for chunk in response.body_iterator])
    exchange["status"] = response.status_code
    exchange["response"] = _decode(content, response.headers.get("content-type"))
    return Response(content, status_code=response.status_code, headers=dict(response.headers))


def _decode(content: bytes, media_type: str | None) -> Any:
    if media_type and "json" in media_type:
        return json.loads(content) if content else None
    return content.decode(errors="replace")
