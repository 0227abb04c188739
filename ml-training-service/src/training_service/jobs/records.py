"""What a job is: the `Job` record, its states, how it ended, and the errors callers see.

The fields of `Job` are also the columns of the SQLite table: each carries its column
declaration (`Column`), and the store derives its column list, CREATE TABLE and in-place
migration from them, so a field is declared once.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, get_type_hints


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        return self in {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED}


def _identity(value: Any) -> Any:
    return value


@dataclass(frozen=True)
class Column:
    """How a `Job` field is stored: its SQL declaration and its conversion to and from SQLite.

    A column added after 0.1.0 must be nullable or have a DEFAULT: older tables get it with
    ALTER TABLE ADD COLUMN when the store opens them.
    """

    sql: str
    dump: Callable[[Any], Any] = _identity  # never called with None
    load: Callable[[Any], Any] = _identity  # never called with None


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


@dataclass
class Job:
    """One training request and everything known about its execution."""

    job_id: Annotated[str, Column("TEXT PRIMARY KEY")]
    status: Annotated[JobStatus, Column("TEXT NOT NULL", load=JobStatus)]
    params: Annotated[dict[str, Any], Column("TEXT NOT NULL", json.dumps, json.loads)]
    register: Annotated[bool, Column("INTEGER NOT NULL", load=bool)]
    dataset_id: Annotated[str, Column("TEXT NOT NULL")]
    epochs: Annotated[int, Column("INTEGER NOT NULL")]
    epoch: Annotated[int, Column("INTEGER NOT NULL")] = 0
    metrics: Annotated[dict[str, float] | None, Column("TEXT", json.dumps, json.loads)] = None
    run_id: Annotated[str | None, Column("TEXT")] = None
    model_name: Annotated[str | None, Column("TEXT")] = None
    model_version: Annotated[str | None, Column("TEXT")] = None
    error: Annotated[str | None, Column("TEXT")] = None
    idempotency_key: Annotated[str | None, Column("TEXT UNIQUE")] = None
    request_sha256: Annotated[str | None, Column("TEXT")] = None
    created_at: Annotated[str, Column("TEXT NOT NULL")] = field(default_factory=now_iso)
    started_at: Annotated[str | None, Column("TEXT")] = None
    finished_at: Annotated[str | None, Column("TEXT")] = None
    cancel_requested: Annotated[bool, Column("INTEGER NOT NULL DEFAULT 0", load=bool)] = False
    # X-Request-ID of the POST /v1/train that created the job (None for 0.1.0 rows).
    request_id: Annotated[str | None, Column("TEXT")] = None
    # The epoch after which early stopping ended the job (None: it ran every epoch).
    stopped_early_at: Annotated[int | None, Column("INTEGER")] = None


def _columns() -> dict[str, Column]:
    hints = get_type_hints(Job, include_extras=True)
    return {f.name: hints[f.name].__metadata__[0] for f in fields(Job)}


#: The jobs table's columns in `Job` field order, derived from the dataclass.
COLUMNS: dict[str, Column] = _columns()


@dataclass(frozen=True)
class JobOutcome:
    """How a job ended, as reported by an executor."""

    status: JobStatus
    metrics: dict[str, float] | None = None
    run_id: str | None = None
    model_version: str | None = None
    error: str | None = None
    # MLflow did not answer when the job failed: its run (run_id) is still RUNNING there.
    run_left_running: bool = False
    stopped_early_at: int | None = None


@dataclass(frozen=True)
class TrainingDefaults:
    """What every job shares: where to log, under which name to register, where to keep
    checkpoints (None: none) and how many DataLoader worker processes read batches."""

    experiment: str
    model_name: str
    checkpoints_dir: Path | None = None
    dataloader_workers: int = 0


def request_fingerprint(body: dict[str, Any]) -> str:
    """Stable hash of a request body: the same JSON content always gives the same hash."""
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


class IdempotencyConflictError(Exception):
    """The Idempotency-Key was already used with a different request body."""


class QueueFullError(Exception):
    """MAX_QUEUED_JOBS jobs are already waiting."""


class JobNotFoundError(KeyError):
    """No job with this id."""


class JobFinishedError(Exception):
    """The job already reached a final state and cannot be cancelled."""
