"""Training jobs: a SQLite-backed store and a bounded runner that keeps training off the loop.

The runner owns MAX_CONCURRENT_JOBS dispatcher threads; each hands one job at a time to an
executor (worker.py), by default a separate process, so training never competes with the
event loop for the GIL. Every state change is written to SQLite under DATA_DIR before it is
visible over HTTP, so a restart never loses a job: finished jobs stay, queued jobs are
queued again, and jobs that were running are marked failed with the reason.
"""

from __future__ import annotations

import hashlib
import json
import logging
import queue
import sqlite3
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

from training_service.data import DatasetStore, build_dataset
from training_service.logs import bound_request_id
from training_service.metrics import JOB_DURATION, JOBS_FINISHED, LAST_TEST_ACCURACY
from training_service.params import TrainingParams

log = logging.getLogger(__name__)


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        return self in {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED}


@dataclass
class Job:
    """One training request and everything known about its execution."""

    job_id: str
    status: JobStatus
    params: dict[str, Any]
    register: bool
    dataset_id: str
    epochs: int
    epoch: int = 0
    metrics: dict[str, float] | None = None
    run_id: str | None = None
    model_name: str | None = None
    model_version: str | None = None
    error: str | None = None
    idempotency_key: str | None = None
    request_sha256: str | None = None
    created_at: str = field(default_factory=lambda: now_iso())
    started_at: str | None = None
    finished_at: str | None = None
    cancel_requested: bool = False
    # X-Request-ID of the POST /v1/train that created the job (None for older rows).
    request_id: str | None = None


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


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


_COLUMNS = [
    "job_id", "status", "params", "register", "dataset_id", "epochs", "epoch", "metrics",
    "run_id", "model_name", "model_version", "error", "idempotency_key", "request_sha256",
    "created_at", "started_at", "finished_at", "cancel_requested", "request_id",
]  # fmt: skip
_JSON_COLUMNS = {"params", "metrics"}
# Columns added after 0.1.0, with their declarations: older databases get them on open.
_ADDED_COLUMNS = {"request_id": "TEXT"}


class JobStore:
    """Jobs in one SQLite table; a lock serialises access from the API and the workers."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        # Autocommit, shared by threads (the lock serialises them); worker processes open
        # their own connection, and the timeout lets them wait out each other's writes.
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            """CREATE TABLE IF NOT EXISTS jobs (
                job_id TEXT PRIMARY KEY, status TEXT NOT NULL, params TEXT NOT NULL,
                register INTEGER NOT NULL, dataset_id TEXT NOT NULL, epochs INTEGER NOT NULL,
                epoch INTEGER NOT NULL, metrics TEXT, run_id TEXT, model_name TEXT,
                model_version TEXT, error TEXT, idempotency_key TEXT UNIQUE,
                request_sha256 TEXT, created_at TEXT NOT NULL, started_at TEXT,
                finished_at TEXT, cancel_requested INTEGER NOT NULL DEFAULT 0,
                request_id TEXT)"""
        )
        self._migrate()

    def _migrate(self) -> None:
        """Bring a table made by an older version up to date, in place, keeping its rows."""
        existing = {row[1] for row in self._db.execute("PRAGMA table_info(jobs)")}
        for column, declaration in _ADDED_COLUMNS.items():
            if column in existing:
                continue
            try:
                self._db.execute(f"ALTER TABLE jobs ADD COLUMN {column} {declaration}")
            except sqlite3.OperationalError as exc:
                # Another process (the service or a worker) added it first.
                if "duplicate column name" not in str(exc):
                    raise

    @property
    def lock(self) -> threading.RLock:
        return self._lock

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @staticmethod
    def _row_to_job(row: tuple[Any, ...]) -> Job:
        values = dict(zip(_COLUMNS, row, strict=True))
        for column in _JSON_COLUMNS:
            if values[column] is not None:
                values[column] = json.loads(values[column])
        values["status"] = JobStatus(values["status"])
        values["register"] = bool(values["register"])
        values["cancel_requested"] = bool(values["cancel_requested"])
        return Job(**values)

    def insert(self, job: Job) -> None:
        values = asdict(job)
        row = [
            json.dumps(values[c]) if c in _JSON_COLUMNS and values[c] is not None else values[c]
            for c in _COLUMNS
        ]
        with self._lock:
            self._db.execute(
                f"INSERT INTO jobs ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(row))})",
                row,
            )

    def update(self, job_id: str, **fields: Any) -> None:
        unknown = set(fields) - set(_COLUMNS)
        if unknown:
            raise ValueError(f"unknown job fields {sorted(unknown)}")
        values = [
            json.dumps(v) if k in _JSON_COLUMNS and v is not None else v for k, v in fields.items()
        ]
        assignments = ", ".join(f"{k} = ?" for k in fields)
        with self._lock:
            self._db.execute(f"UPDATE jobs SET {assignments} WHERE job_id = ?", [*values, job_id])

    def get(self, job_id: str) -> Job:
        with self._lock:
            row = self._db.execute(
                f"SELECT {', '.join(_COLUMNS)} FROM jobs WHERE job_id = ?", [job_id]
            ).fetchone()
        if row is None:
            raise JobNotFoundError(job_id)
        return self._row_to_job(row)

    def is_cancel_requested(self, job_id: str) -> bool:
        with self._lock:
            row = self._db.execute(
                "SELECT cancel_requested FROM jobs WHERE job_id = ?", [job_id]
            ).fetchone()
        return bool(row and row[0])

    def request_id_of(self, job_id: str) -> str | None:
        """The request id a job's log lines carry (None for unknown jobs and older rows)."""
        with self._lock:
            row = self._db.execute(
                "SELECT request_id FROM jobs WHERE job_id = ?", [job_id]
            ).fetchone()
        return None if row is None else row[0]

    def by_idempotency_key(self, key: str) -> Job | None:
        with self._lock:
            row = self._db.execute(
                f"SELECT {', '.join(_COLUMNS)} FROM jobs WHERE idempotency_key = ?", [key]
            ).fetchone()
        return None if row is None else self._row_to_job(row)

    def list_jobs(self, status: JobStatus | None = None, limit: int = 100) -> list[Job]:
        """Newest first."""
        where, args = ("WHERE status = ?", [status.value]) if status else ("", [])
        with self._lock:
            rows = self._db.execute(
                f"SELECT {', '.join(_COLUMNS)} FROM jobs {where} "
                "ORDER BY created_at DESC, rowid DESC LIMIT ?",
                [*args, limit],
            ).fetchall()
        return [self._row_to_job(r) for r in rows]

    def count_by_status(self) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute("SELECT status, COUNT(*) FROM jobs GROUP BY status").fetchall()
        counts = {s.value: 0 for s in JobStatus}
        counts.update({status: n for status, n in rows})
        return counts

    def fail_interrupted(self) -> list[Job]:
        """Mark jobs left `running` by a previous process as failed; returns them."""
        interrupted = self.list_jobs(JobStatus.RUNNING, limit=1_000_000)
        for job in interrupted:
            self.update(
                job.job_id,
                status=JobStatus.FAILED.value,
                error=(
                    f"the service stopped while this job was running (at epoch {job.epoch}"
                    f"/{job.epochs}); submit the request again"
                ),
                finished_at=now_iso(),
            )
        return interrupted


@dataclass(frozen=True)
class TrainingDefaults:
    """What every job shares: where to log and under which name to register."""

    experiment: str
    model_name: str


@dataclass(frozen=True)
class JobOutcome:
    """How a job ended, as reported by an executor."""

    status: JobStatus
    metrics: dict[str, float] | None = None
    run_id: str | None = None
    model_version: str | None = None
    error: str | None = None


class JobExecutor(Protocol):
    """Runs one job to completion (blocking) and reports how it ended; never raises."""

    def execute(self, job: Job) -> JobOutcome: ...

    def shutdown(self) -> None: ...


class JobRunner:
    """Accepts jobs (bounded queue) and dispatches them, MAX_CONCURRENT_JOBS at a time."""

    def __init__(
        self,
        store: JobStore,
        datasets: DatasetStore,
        executor: JobExecutor,
        *,
        model_name: str,
        max_concurrent: int = 1,
        max_queued: int = 8,
    ) -> None:
        self.store = store
        self.datasets = datasets
        self.executor = executor
        self.model_name = model_name
        self.max_concurrent = max_concurrent
        self.max_queued = max_queued
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._dispatchers: list[threading.Thread] = []
        self._stopping = False

    def start(self) -> list[Job]:
        """Recover from the previous process, then start dispatching; returns failed jobs."""
        interrupted = self.store.fail_interrupted()
        for job in interrupted:
            JOBS_FINISHED.labels(JobStatus.FAILED.value).inc()
            log.warning(
                "job %s was running when the service stopped: marked failed",
                job.job_id,
                extra={"job_id": job.job_id, "request_id": job.request_id},
            )
        for job in reversed(self.store.list_jobs(JobStatus.QUEUED, limit=1_000_000)):
            self._queue.put(job.job_id)  # oldest first: jobs queued before a restart still run
        for index in range(self.max_concurrent):
            dispatcher = threading.Thread(target=self._dispatch, name=f"job-dispatcher-{index}")
            dispatcher.daemon = True  # never block interpreter exit; state is already persisted
            dispatcher.start()
            self._dispatchers.append(dispatcher)
        return interrupted

    def stop(self, timeout: float = 5.0) -> None:
        """Ask running jobs to stop and stop dispatching (queued jobs stay queued on disk)."""
        self._stopping = True
        for job in self.store.list_jobs(JobStatus.RUNNING, limit=1_000_000):
            self.store.update(job.job_id, cancel_requested=1)
        for _ in self._dispatchers:
            self._queue.put(None)
        for dispatcher in self._dispatchers:
            dispatcher.join(timeout)
        self.executor.shutdown()

    def submit(
        self,
        *,
        params: TrainingParams,
        dataset_id: str | None,
        register: bool,
        request_body: dict[str, Any],
        idempotency_key: str | None = None,
        request_id: str | None = None,
    ) -> tuple[Job, bool]:
        """Queue a job; returns (job, created). A replayed Idempotency-Key returns the old job.

        Raises IdempotencyConflictError, QueueFullError or DatasetNotFoundError.
        """
        fingerprint = request_fingerprint(request_body)
        with self.store.lock:
            if idempotency_key is not None:
                existing = self.store.by_idempotency_key(idempotency_key)
                if existing is not None:
                    if existing.request_sha256 != fingerprint:
                        raise IdempotencyConflictError(idempotency_key)
                    return existing, False
            if self.store.count_by_status()[JobStatus.QUEUED.value] >= self.max_queued:
                raise QueueFullError
            if dataset_id is None:
                # No dataset named: snapshot a fresh digits split with the job's seed.
                dataset = build_dataset("digits", data_dir=self.datasets.root, seed=params.seed)
                dataset_id = self.datasets.save(dataset).dataset_id
            else:
                self.datasets.info(dataset_id)  # raises DatasetNotFoundError
            job = Job(
                job_id=f"job-{uuid.uuid4().hex[:12]}",
                status=JobStatus.QUEUED,
                params=asdict(params),
                register=register,
                dataset_id=dataset_id,
                epochs=params.epochs,
                model_name=self.model_name if register else None,
                idempotency_key=idempotency_key,
                request_sha256=fingerprint,
                request_id=request_id,
            )
            self.store.insert(job)
        self._queue.put(job.job_id)
        return job, True

    def cancel(self, job_id: str) -> Job:
        """Cancel a queued job at once, or ask a running one to stop at its next batch."""
        with self.store.lock:
            job = self.store.get(job_id)
            if job.status.is_final:
                raise JobFinishedError(job.status.value)
            if job.status is JobStatus.QUEUED:
                self._finish(
                    job_id, JobOutcome(JobStatus.CANCELLED, error="cancelled before it started")
                )
            else:
                self.store.update(job_id, cancel_requested=1)
        return self.store.get(job_id)

    def _finish(self, job_id: str, outcome: JobOutcome) -> None:
        fields: dict[str, Any] = {"status": outcome.status.value, "finished_at": now_iso()}
        fields["error"] = outcome.error
        if outcome.metrics is not None:
            fields["metrics"] = outcome.metrics
        if outcome.run_id is not None:
            fields["run_id"] = outcome.run_id
        if outcome.model_version is not None:
            fields["model_version"] = outcome.model_version
        self.store.update(job_id, **fields)
        JOBS_FINISHED.labels(outcome.status.value).inc()
        if outcome.status is JobStatus.SUCCEEDED and outcome.metrics:
            LAST_TEST_ACCURACY.set(outcome.metrics["test_accuracy"])

    def _dispatch(self) -> None:
        while True:
            job_id = self._queue.get()
            if job_id is None:
                return
            try:
                with bound_request_id(self.store.request_id_of(job_id)):
                    self._run(job_id)
            except Exception:  # a bug here must not kill the dispatcher
                log.exception("job %s: unexpected error in the runner", job_id)

    def _run(self, job_id: str) -> None:
        with self.store.lock:
            job = self.store.get(job_id)
            if job.status is not JobStatus.QUEUED:  # cancelled while waiting
                return
            self.store.update(job_id, status=JobStatus.RUNNING.value, started_at=now_iso())
        started = time.perf_counter()
        log.info("job %s: started", job_id, extra={"job_id": job_id})
        outcome = self.executor.execute(job)
        if self._stopping and outcome.status is JobStatus.CANCELLED:
            # Stopped by a shutdown, not by a user: say so, like a restart would.
            outcome = JobOutcome(
                JobStatus.FAILED,
                run_id=outcome.run_id,
                error="the service shut down while this job was running; submit it again",
            )
        JOB_DURATION.observe(time.perf_counter() - started)
        with self.store.lock:
            if self.store.get(job_id).status is JobStatus.RUNNING:
                self._finish(job_id, outcome)
        log.info(
            "job %s: %s %s",
            job_id,
            outcome.status.value,
            outcome.error or "",
            extra={"job_id": job_id, "status": outcome.status.value},
        )
