"""Log formatting and request-id binding, and the request id on a 500 answer."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import logging.config
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from training_service.app import create_app
from training_service.config import Settings
from training_service.logs import (
    JsonFormatter,
    RequestIdFilter,
    TextFormatter,
    bound_request_id,
    logging_config,
)


@pytest.fixture()
def captured() -> Iterator[tuple[logging.Logger, io.StringIO, logging.Handler]]:
    """A logger writing through the service's filter into a buffer (formatter set per test)."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.addFilter(RequestIdFilter())
    logger = logging.getLogger("training_service.test_logs")
    logger.propagate, logger.level = False, logging.DEBUG
    logger.addHandler(handler)
    try:
        yield logger, buffer, handler
    finally:
        logger.removeHandler(handler)


def test_json_lines_carry_the_bound_request_id(captured: tuple) -> None:
    logger, buffer, handler = captured
    handler.setFormatter(JsonFormatter())
    logger.info("outside")
    with bound_request_id("req-1"):
        logger.warning("inside %s", "thread", extra={"job_id": "job-1"})

        async def in_a_worker_thread() -> None:
            await asyncio.to_thread(logger.info, "copied context")

        asyncio.run(in_a_worker_thread())
        try:
            raise ValueError("bad")
        except ValueError:
            logger.exception("failed")
    logger.info("explicit", extra={"request_id": "req-2"})
    lines = [json.loads(line) for line in buffer.getvalue().splitlines()]
    assert [e["message"] for e in lines] == [
        "outside",
        "inside thread",
        "copied context",
        "failed",
        "explicit",
    ]
    assert [e.get("request_id") for e in lines] == [None, "req-1", "req-1", "req-1", "req-2"]
    assert "request_id" not in lines[0]
    first = lines[1]
    assert first["level"] == "WARNING" and first["logger"] == "training_service.test_logs"
    assert first["service"] == "ml-training-service" and first["job_id"] == "job-1"
    stamp = datetime.fromisoformat(first["ts"])
    assert stamp.tzinfo is not None and stamp.utcoffset() == UTC.utcoffset(None)
    assert abs((datetime.now(UTC) - stamp).total_seconds()) < 60
    assert "ValueError: bad" in lines[3]["exc_info"]


def test_text_lines_show_the_request_id(captured: tuple) -> None:
    logger, buffer, handler = captured
    handler.setFormatter(TextFormatter())
    logger.info("no request")
    with bound_request_id("req-7"):
        logger.info("in a request")
    first, second = buffer.getvalue().splitlines()
    assert first.endswith(" INFO training_service.test_logs [-] no request")
    assert second.endswith(" INFO training_service.test_logs [req-7] in a request")


def test_config_routes_uvicorn_and_mlflow_through_one_handler() -> None:
    config = logging_config("warning", "json")
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "mlflow"):
        assert config["loggers"][name] == {"handlers": [], "propagate": True, "level": "WARNING"}
    assert config["root"] == {"handlers": ["stderr"], "level": "WARNING"}
    assert config["formatters"]["default"]["()"] is JsonFormatter
    assert logging_config("info", "text")["formatters"]["default"]["()"] is TextFormatter


def test_unhandled_error_is_500_with_the_request_id(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(environment="local", data_dir=tmp_path, job_executor="thread")
    app = create_app(settings)

    async def boom() -> None:
        raise RuntimeError("bug")

    app.add_api_route("/boom", boom)
    with TestClient(app, raise_server_exceptions=False) as local:
        response = local.get("/boom", headers={"X-Request-ID": "req-500"})
    assert response.status_code == 500
    assert response.json() == {"detail": "internal error (RuntimeError); see the service log"}
    assert response.headers["x-request-id"] == "req-500"
    errors = [r for r in caplog.records if r.getMessage() == "unhandled error on GET /boom"]
    assert errors and errors[0].request_id == "req-500"  # type: ignore[attr-defined]
