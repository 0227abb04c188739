"""The request-id rule both services share, and the one telemetry middleware on a request."""

from __future__ import annotations

import re

import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient

from training_service.logs import REQUEST_ID, RequestIdFilter
from training_service.metrics import REGISTRY
from training_service.middleware import TelemetryMiddleware, request_id_from

UUID_HEX = re.compile(r"[0-9a-f]{32}")


@pytest.mark.parametrize(
    "header",
    [
        b"abc-1",
        b"training_pipeline/manual__2026-11-26T08:00:00+00:00",
        b"a.b:c+d=e@f~g",
        b"x" * 200,
    ],
)
def test_usable_ids_are_kept(header: bytes) -> None:
    assert request_id_from({"headers": [(b"x-request-id", header)]}) == header.decode()


@pytest.mark.parametrize("header", [b"", b"two words", b"x" * 201, b"a;b", b"caf\xc3\xa9", b"a\nb"])
def test_unusable_or_missing_ids_are_replaced(header: bytes) -> None:
    assert UUID_HEX.fullmatch(request_id_from({"headers": [(b"x-request-id", header)]}))
    assert UUID_HEX.fullmatch(request_id_from({"headers": []}))


def test_one_middleware_sets_the_id_counts_and_logs(caplog: pytest.LogCaptureFixture) -> None:
    app = FastAPI()

    @app.get("/items/{item_id}")
    async def item(item_id: int, request: Request) -> dict[str, str | None]:
        return {"state": request.state.request_id, "bound": REQUEST_ID.get()}

    app.add_middleware(TelemetryMiddleware)
    labels = {"method": "GET", "route": "/items/{item_id}", "status": "200"}
    caplog.handler.addFilter(RequestIdFilter())  # as the service's handler does
    before = REGISTRY.get_sample_value("http_requests_total", labels) or 0
    with caplog.at_level("INFO", logger="training_service.access"), TestClient(app) as client:
        response = client.get("/items/3", headers={"X-Request-ID": "req-9"})
    assert response.headers["x-request-id"] == "req-9"
    assert response.json() == {"state": "req-9", "bound": "req-9"}
    assert REGISTRY.get_sample_value("http_requests_total", labels) == before + 1
    (line,) = [r for r in caplog.records if r.name == "training_service.access"]
    assert line.levelname == "INFO" and line.route == "/items/{item_id}"  # type: ignore[attr-defined]
    assert line.request_id == "req-9"  # type: ignore[attr-defined]
