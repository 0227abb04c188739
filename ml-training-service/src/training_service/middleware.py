"""ASGI middleware: the request id of every request, and its metrics and access log line."""

from __future__ import annotations

import logging
import re
import time
import uuid

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from training_service.logs import bound_request_id
from training_service.metrics import HTTP_DURATION, HTTP_REQUESTS

REQUEST_ID_HEADER = "X-Request-ID"

# Callers choose their ids (the orchestrator sends "<dag_id>/<run_id>"), but an id ends up in
# log lines and MLflow tags: printable ASCII of a sane length, else a fresh one is made.
_VALID_REQUEST_ID = re.compile(r"^[\x21-\x7e]{1,200}$")

# Probes and scrapes arrive every few seconds: their access lines are debug, not info.
_QUIET_ROUTES = frozenset({"/health", "/ready", "/metrics"})

access_log = logging.getLogger("training_service.access")


def new_request_id() -> str:
    return uuid.uuid4().hex


def request_id_from(scope: Scope) -> str:
    """The caller's X-Request-ID when it is usable, else a new uuid4 hex."""
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            text = value.decode("latin-1")
            return text if _VALID_REQUEST_ID.match(text) else new_request_id()
    return new_request_id()


class _HttpMiddleware:
    """Pure ASGI middleware that handles HTTP requests and passes anything else through."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self.handle(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        raise NotImplementedError


class RequestIdMiddleware(_HttpMiddleware):
    """Binds the request id for the request's logs, keeps it in `request.state.request_id`
    and echoes it on the response as X-Request-ID."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        request_id = request_id_from(scope)
        # The 500 handler runs outside this middleware: it finds the id in the request state.
        scope.setdefault("state", {})["request_id"] = request_id

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id
            await send(message)

        with bound_request_id(request_id):
            await self.app(scope, receive, send_with_id)


class RequestMetricsMiddleware(_HttpMiddleware):
    """Counts, times and logs every request by route template (not raw path: bounded labels)."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        status_code = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status_code
            if message["type"] == "http.response.start":
                status_code = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            elapsed = time.perf_counter() - started
            route = getattr(scope.get("route"), "path", "unmatched")
            method = scope["method"]
            status = str(status_code)
            HTTP_REQUESTS.labels(method, route, status).inc()
            HTTP_DURATION.labels(method, route, status).observe(elapsed)
            access_log.log(
                logging.DEBUG if route in _QUIET_ROUTES else logging.INFO,
                "%s %s %s %.1f ms",
                method,
                scope["path"],
                status,
                elapsed * 1000,
                extra={
                    "method": method,
                    "route": route,
                    "path": scope["path"],
                    "status": status_code,
                    "duration_ms": round(elapsed * 1000, 3),
                },
            )
