"""Prometheus metrics (names fixed by the team contract) and the ASGI middleware that feeds them."""

from __future__ import annotations

import contextlib
import logging
import re
from time import perf_counter
from typing import Any
from uuid import uuid4

from prometheus_client import Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serving_service.logs import REQUEST_ID

log = logging.getLogger("serving_service.requests")
# Request ids taken from clients: printable tokens such as uuids or Airflow's
# "<dag_id>/manual__2026-11-26T08:00:00+00:00"; anything else is replaced by a new id.
_SANE_ID = re.compile(rb"[A-Za-z0-9._:/+=@~-]{1,200}")

HTTP_REQUESTS = Counter(
    "http_requests_total",
    "HTTP requests by method, route and status",
    ["method", "route", "status"],
)
HTTP_LATENCY = Histogram(
    "http_request_duration_seconds",
    "HTTP request latency by method, route and status",
    ["method", "route", "status"],
    # Millisecond resolution where this service lives; seconds for model loads on demand.
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
PREDICTIONS = Counter(
    "predictions_total", "Predicted labels by model version", ["model_version", "label"]
)
MODEL_VERSION_INFO = Gauge(
    "model_version_info",
    "The version serving the alias (value is always 1)",
    ["name", "alias", "version"],
)
MODEL_SWAPS = Counter(
    "model_swaps_total",
    "Alias swap attempts: success, load_failed, smoke_test_failed",
    ["result"],
)
REGISTRY_UP = Gauge("model_registry_up", "1 when the last registry poll succeeded")

for _result in ("success", "load_failed", "smoke_test_failed"):
    MODEL_SWAPS.labels(result=_result)


_PREDICTION_COUNTERS: dict[tuple[str, str], Any] = {}


def count_predictions(version: str, labels: list[str]) -> None:
    """Count labels once per distinct label, not once per instance, to keep big batches cheap.

    The labelled children are cached: `Counter.labels` takes a lock and builds a key on
    every call, which is a measurable share of a batch-1 request.
    """
    if len(labels) == 1:
        counts = {labels[0]: 1}
    else:
        counts = {}
        for label in labels:
            counts[label] = counts.get(label, 0) + 1
    for label, n in counts.items():
        child = _PREDICTION_COUNTERS.get((version, label))
        if child is None:
            child = _PREDICTION_COUNTERS[(version, label)] = PREDICTIONS.labels(
                model_version=version, label=label
            )
        child.inc(n)


def publish_model_version(name: str, alias: str, version: str, previous: str | None) -> None:
    if previous is not None:
        with contextlib.suppress(KeyError):
            MODEL_VERSION_INFO.remove(name, alias, previous)
    MODEL_VERSION_INFO.labels(name=name, alias=alias, version=version).set(1)


class TelemetryMiddleware:
    """Request id, metrics and debug request logs in one pure ASGI layer.

    A few microseconds per request, unlike BaseHTTPMiddleware. The request id is the
    `X-Request-ID` header when it is a sane token, else a new one; it is echoed on the
    response and set in `REQUEST_ID` for every log line written while handling the request.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._children: dict[tuple[str, str, str], Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = perf_counter()
        status = 500
        request_id = _request_id(scope["headers"])
        token = REQUEST_ID.set(request_id)
        id_header = (b"x-request-id", request_id.encode())

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), id_header]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            elapsed = perf_counter() - start
            # The route template (not the raw path) keeps label cardinality bounded.
            route = scope.get("route")
            path = getattr(route, "path", "unmatched")
            key = (scope["method"], path, str(status))
            child = self._children.get(key)
            if child is None:
                child = self._children[key] = (
                    HTTP_LATENCY.labels(*key),
                    HTTP_REQUESTS.labels(*key),
                )
            child[0].observe(elapsed)
            child[1].inc()
            if log.isEnabledFor(logging.DEBUG):
                log.debug("%s %s -> %s in %.1f ms", key[0], scope["path"], status, elapsed * 1e3)
            REQUEST_ID.reset(token)


def _request_id(headers: list[tuple[bytes, bytes]]) -> str:
    for name, value in headers:
        if name == b"x-request-id":
            if _SANE_ID.fullmatch(value):
                return value.decode()
            break
    return uuid4().hex
