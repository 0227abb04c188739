"""Pure ASGI middleware: every request's id, its HTTP metrics and its access log line.

The same names as in ml-serving-service: `REQUEST_ID_HEADER`, `new_request_id`,
`request_id_from` (one rule for both services) and `TelemetryMiddleware`.
"""

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
# log lines and MLflow tags: a safe character set and a sane length, else a fresh one is made.
_VALID_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:/+=@~-]{1,200}")
_HEADER_NAME = REQUEST_ID_HEADER.lower().encode()

# Probes and scrapes arrive every few seconds: their access lines are debug, not info.
_QUIET_ROUTES = frozenset({"/health", "/ready", "/metrics"})

access_log = logging.getLogger("training_service.access")


def new_request_id() -> str:
    return uuid.uuid4().hex


def request_id_from(scope: Scope) -> str:
    """The caller's X-Request-ID when it is usable, else a new uuid4 hex."""
    for name, value in scope.get("headers", ()):
        if name == _HEADER_NAME:
            return value.decode() if _VALID_REQUEST_ID.fullmatch(value) else new_request_id()
    return new_request_id()


class TelemetryMiddleware:
    """Per HTTP request: the request id (bound for logs, in `request.state.request_id`,
    echoed as X-Request-ID), metrics by route template (not raw path: bounded labels) and
    one access log line. Other ASGI traffic (lifespan) passes through."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_from(scope)
        # The 500 handler runs outside this middleware: it finds the id in the request state.
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status_code = 500  # unless a response starts: an exception escaped the app

        async def send_with_id(message: Message) -> None:
            nonlocal status_code
            if message["type"] == "http.response.start":
                status_code = message["status"]
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id
            await send(message)

        with bound_request_id(request_id):
            try:
                await self.app(scope, receive, send_with_id)
            finally:
                self._observe(scope, status_code, time.perf_counter() - started)

    @staticmethod
    def _observe(scope: Scope, status_code: int, elapsed: float) -> None:
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
