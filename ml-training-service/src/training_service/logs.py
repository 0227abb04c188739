"""Structured logs: one JSON object per line (or plain text), tagged with the request id.

The request id lives in a context variable: the HTTP middleware binds it for the request,
the job runner and the worker process bind the id of the POST /v1/train that created the
job, so every line written on behalf of a request carries it, whichever process writes it.
The same handler serves the root logger, uvicorn's loggers and MLflow's, so the service
writes one format only.
"""

from __future__ import annotations

import json
import logging
import logging.config
import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Literal

from training_service import SERVICE_NAME

LogFormat = Literal["json", "text"]

REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)

# Attributes every LogRecord has; anything else on a record came from `extra=` and is logged.
_RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
    "request_id",
    "color_message",  # uvicorn's ANSI-coloured duplicate of the message
}


@contextmanager
def bound_request_id(request_id: str | None) -> Iterator[None]:
    """Lines logged inside the block (in this thread or task) carry `request_id`."""
    token = REQUEST_ID.set(request_id)
    try:
        yield
    finally:
        REQUEST_ID.reset(token)


class RequestIdFilter(logging.Filter):
    """Copies the bound request id onto each record (unless `extra=` already set one).

    A handler filter runs in the thread that logs, so it sees that thread's context.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = REQUEST_ID.get()
        return True


def _utc_iso(created: float) -> str:
    stamp = datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")


class JsonFormatter(logging.Formatter):
    """`{"ts","level","logger","message","service","request_id"?, extras...}` on one line."""

    def __init__(self, service: str = SERVICE_NAME) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": _utc_iso(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "service": self.service,
        }
        request_id = getattr(record, "request_id", None)
        if request_id is not None:
            entry["request_id"] = request_id
        for key, value in record.__dict__.items():
            if key not in _RECORD_ATTRIBUTES and key not in entry:
                entry[key] = value
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack_info"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """`<ts> <LEVEL> <logger> [<request_id>] <message>` for reading in a terminal."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        if getattr(record, "request_id", None) is None:
            record.request_id = "-"
        return super().format(record)


def logging_config(level: str = "info", log_format: LogFormat = "json") -> dict[str, Any]:
    """A `logging.config.dictConfig` document: root, uvicorn and MLflow share one handler."""
    formatter = JsonFormatter if log_format == "json" else TextFormatter
    shared = {"handlers": [], "propagate": True, "level": level.upper()}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": RequestIdFilter}},
        "formatters": {"default": {"()": formatter}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": "default",
                "filters": ["request_id"],
            }
        },
        # Their own handlers (if any) would write a second, unstructured copy of each line.
        "loggers": {
            name: dict(shared) for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "mlflow")
        },
        "root": {"handlers": ["stderr"], "level": level.upper()},
    }


def configure_logging(level: str = "info", log_format: LogFormat = "json") -> None:
    """Install the service's log format in this process (the service and each worker)."""
    # MLflow adds its own plain-text handler when imported unless told not to, and prints
    # the run's URL to stdout when it ends (the run id is in the job's log lines anyway).
    os.environ.setdefault("MLFLOW_CONFIGURE_LOGGING", "false")
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    logging.config.dictConfig(logging_config(level, log_format))
    logging.captureWarnings(True)  # warnings.warn() lines get the same format
