"""Persistence of job records: the `JobStore` every backend offers, and the SQLite backend.

It stores, it does not decide: status and progress changes are decided by `lifecycle`, the
only caller of `update` and `insert` in the service. The table's columns come from
`records.COLUMNS` (the `Job` fields). Two backends implement `JobStore`:

- `SqliteJobStore` (this module): DATA_DIR/jobs.sqlite3, one service process; a job left
  `running` by a previous process is interrupted by definition when the service starts;
- `postgres_store.PostgresJobStore` (DATABASE_URL set): several replicas share the table;
  each claims a queued job with a row lock and holds it under a lease it renews, and a job
  whose lease ran out (its replica died) is interrupted.

`open_job_store` picks one; the Postgres module (and psycopg) is only imported when used.
"""

from __future__ import annotations

import sqlite3
import threading
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Protocol

from training_service.jobs.records import COLUMNS, Job, JobNotFoundError, JobStatus, now_iso

# Column names come from records.COLUMNS (ours, never input); values are bound `?` parameters.
_SELECT = f"SELECT {', '.join(COLUMNS)} FROM jobs"  # noqa: S608


class DuplicateJobError(Exception):
    """Another job already holds this Idempotency-Key (a replica won the race to insert)."""


class JobStore(Protocol):
    """What `lifecycle`, the runner and the API need from a job backend."""

    @property
    def lock(self) -> AbstractContextManager[Any]:
        """Held across a read and the write it decides (see `lifecycle`); reentrant."""
        ...

    def close(self) -> None: ...

    def insert(self, job: Job) -> None:
        """Raises DuplicateJobError when the job's idempotency key is taken."""

    def update(self, job_id: str, **fields: Any) -> None: ...

    def get(self, job_id: str) -> Job: ...

    def is_cancel_requested(self, job_id: str) -> bool:
        """Should this job stop (cancelled, or no longer this process's to run)?"""
        ...

    def request_id_of(self, job_id: str) -> str | None: ...

    def by_idempotency_key(self, key: str) -> Job | None: ...

    def list_jobs(self, status: JobStatus | None = None, limit: int = 100) -> list[Job]: ...

    def count_by_status(self) -> dict[str, int]: ...

    def claim_next(self) -> Job | None:
        """The oldest queued job, now `running` and this process's; None when none waits."""
        ...

    def owns(self, job_id: str) -> bool:
        """Is this job running here (so this process may end it)?"""
        ...

    def renew_leases(self) -> None:
        """Heartbeat: this process still runs its jobs (raises when the store is away)."""

    def interrupted_jobs(self, *, at_start: bool) -> list[Job]:
        """Running jobs nobody runs any more (their process died); call under `lock`."""
        ...


def _dump(column: str, value: Any) -> Any:
    return None if value is None else COLUMNS[column].dump(value)


def row_to_job(row: tuple[Any, ...] | list[Any]) -> Job:
    """A `Job` from a row of the columns in `COLUMNS` order (both backends)."""
    values: dict[str, Any] = {
        name: None if value is None else column.load(value)
        for (name, column), value in zip(COLUMNS.items(), row, strict=True)
    }
    return Job(**values)


def check_fields(fields: dict[str, Any]) -> list[Any]:
    """The values of `fields` as stored; ValueError for a name that is not a column."""
    unknown = set(fields) - set(COLUMNS)
    if unknown:
        raise ValueError(f"unknown job fields {sorted(unknown)}")
    return [_dump(name, value) for name, value in fields.items()]


class SqliteJobStore:
    """Jobs in one SQLite table; a lock serialises access from the API and the dispatchers.

    One service process uses it: a running job is owned by this process, and every job a
    previous process left running is interrupted when the service starts (no leases).
    """

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        # Autocommit, shared by threads (the lock serialises them); the timeout lets another
        # process opening the same file (a restarted service) wait out a write.
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        declarations = ", ".join(f"{name} {column.sql}" for name, column in COLUMNS.items())
        self._db.execute(f"CREATE TABLE IF NOT EXISTS jobs ({declarations})")
        self._migrate()

    def _migrate(self) -> None:
        """Bring a table made by an older version up to date, in place, keeping its rows."""
        existing = {row[1] for row in self._db.execute("PRAGMA table_info(jobs)")}
        for name, column in COLUMNS.items():
            if name in existing:
                continue
            try:
                self._db.execute(f"ALTER TABLE jobs ADD COLUMN {name} {column.sql}")
            except sqlite3.OperationalError as exc:
                # Another process opening the same database added it first.
                if "duplicate column name" not in str(exc):
                    raise

    @property
    def lock(self) -> threading.RLock:
        return self._lock

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def insert(self, job: Job) -> None:
        row = [_dump(name, getattr(job, name)) for name in COLUMNS]
        with self._lock:
            try:
                # Column names come from records.COLUMNS; values are bound `?` parameters.
                self._db.execute(
                    f"INSERT INTO jobs ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(row))})",  # noqa: S608
                    row,
                )
            except sqlite3.IntegrityError as exc:
                if "idempotency_key" not in str(exc):
                    raise
                raise DuplicateJobError(job.idempotency_key) from None

    def update(self, job_id: str, **fields: Any) -> None:
        values = check_fields(fields)
        assignments = ", ".join(f"{name} = ?" for name in fields)
        with self._lock:
            # Column names come from records.COLUMNS (checked above); values are bound `?`.
            self._db.execute(
                f"UPDATE jobs SET {assignments} WHERE job_id = ?",  # noqa: S608
                [*values, job_id],
            )

    def get(self, job_id: str) -> Job:
        with self._lock:
            row = self._db.execute(f"{_SELECT} WHERE job_id = ?", [job_id]).fetchone()
        if row is None:
            raise JobNotFoundError(job_id)
        return row_to_job(row)

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
            row = self._db.execute(f"{_SELECT} WHERE idempotency_key = ?", [key]).fetchone()
        return None if row is None else row_to_job(row)

    def list_jobs(self, status: JobStatus | None = None, limit: int = 100) -> list[Job]:
        """Newest first."""
        where, args = ("WHERE status = ?", [status.value]) if status else ("", [])
        with self._lock:
            rows = self._db.execute(
                f"{_SELECT} {where} ORDER BY created_at DESC, rowid DESC LIMIT ?",
                [*args, limit],
            ).fetchall()
        return [row_to_job(r) for r in rows]

    def count_by_status(self) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute("SELECT status, COUNT(*) FROM jobs GROUP BY status").fetchall()
        counts = {s.value: 0 for s in JobStatus}
        counts.update({status: n for status, n in rows})
        return counts

    def claim_next(self) -> Job | None:
        with self._lock:
            row = self._db.execute(
                f"{_SELECT} WHERE status = ? ORDER BY created_at, rowid LIMIT 1",
                [JobStatus.QUEUED.value],
            ).fetchone()
            if row is None:
                return None
            job = row_to_job(row)
            # A job resumed after a crash keeps the time it first started.
            self.update(
                job.job_id, status=JobStatus.RUNNING.value, started_at=job.started_at or now_iso()
            )
            return self.get(job.job_id)

    def owns(self, job_id: str) -> bool:
        try:
            return self.get(job_id).status is JobStatus.RUNNING
        except JobNotFoundError:
            return False

    def renew_leases(self) -> None:
        """Nothing to renew: one process uses the file."""

    def interrupted_jobs(self, *, at_start: bool) -> list[Job]:
        # Only this process uses the file: at start, whatever was running was interrupted.
        return self.list_jobs(JobStatus.RUNNING, limit=1_000_000) if at_start else []


def open_job_store(
    sqlite_path: Path, database_url: str | None = None, *, lease_seconds: float = 30.0
) -> JobStore:
    """Postgres when DATABASE_URL is set (migrated to head first), else SQLite."""
    if not database_url:
        return SqliteJobStore(sqlite_path)
    from training_service.jobs.postgres_store import PostgresJobStore

    return PostgresJobStore(database_url, lease_seconds=lease_seconds)
