"""Structured logs: one JSON object per line, carrying the id of the request being handled.

The request id comes from the `X-Request-ID` header (Airflow tasks send `<dag_id>/<run_id>`),
so grepping one id across the services' logs follows one pipeline run. It lives in a context
variable: code that logs needs no extra argument, and threads started with
`asyncio.to_thread` inherit it.
"""

from __future__ import annotations

import json
import logging
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from serving_service import SERVICE_NAME

REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)


class JsonFormatter(logging.Formatter):
    """`ts`, `level`, `logger`, `message`, `service`, `request_id` (when known), `exc_info`."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "service": SERVICE_NAME,
        }
        request_id = REQUEST_ID.get()
        if request_id is not None:
            entry["request_id"] = request_id
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    """The classic line, with the request id in brackets when there is one."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        request_id = REQUEST_ID.get()
        return f"{line} [request_id={request_id}]" if request_id else line


def log_config(level: str, fmt: str) -> dict[str, Any]:
    """A `logging.config.dictConfig` for the app and uvicorn (also applied in each worker)."""
    formatter = (
        "serving_service.logs.JsonFormatter"
        if fmt == "json"
        else ("serving_service.logs.TextFormatter")
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"default": {"()": formatter}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "default",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"handlers": ["stderr"], "level": level.upper()},
        "loggers": {
            name: {"handlers": [], "propagate": True, "level": level.upper()}
            for name in ("uvicorn", "uvicorn.error", "uvicorn.access")
        },
    }
