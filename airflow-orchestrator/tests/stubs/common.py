"""Middleware shared by the stub apps: request log, injected faults, Bearer auth."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

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
        with world.lock:
            world.requests.append(
                {
                    "service": service,
                    "method": request.method,
                    "path": request.url.path,
                    "query": dict(request.query_params),
                    "headers": dict(request.headers),
                    "body": body,
                }
            )
            armed = world.faults.get(key, 0)
            if armed:
                world.faults[key] = armed - 1
        if armed:
            return JSONResponse({"detail": f"stub fault on {key}: restarting"}, status_code=503)
        bearer = request.headers.get("authorization")
        if auth_posts and request.method == "POST" and bearer != f"Bearer {TOKEN}":
            return JSONResponse(
                {"detail": "missing or wrong Bearer token; set API_TOKEN"}, status_code=401
            )
        return await call_next(request)
