"""Persistence of job records in one SQLite table under DATA_DIR; it stores, it does not decide.

Status and progress changes are decided by `lifecycle`, the only caller of `update` and
`insert` in the service. The table's columns come from `records.COLUMNS` (the `Job` fields).
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

from training_service.jobs.records import COLUMNS, Job, JobNotFoundError, JobStatus

# Column names come from records.COLUMNS (ours, never input); values are bound `?` parameters.
_SELECT = f"SELECT {', '.join(COLUMNS)} FROM jobs"  # noqa: S608


def _dump(column: str, value: Any) -> Any:
    return None if value is None else COLUMNS[column].dump(value)


class JobStore:
    """Jobs in one SQLite table; a lock serialises access from the API and the dispatchers."""

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
        """Held across a read and the write it decides (see `lifecycle`)."""
        return self._lock

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @staticmethod
    def _row_to_job(row: tuple[Any, ...]) -> Job:
        values: dict[str, Any] = {
            name: None if value is None else column.load(value)
            for (name, column), value in zip(COLUMNS.items(), row, strict=True)
        }
        return Job(**values)

    def insert(self, job: Job) -> None:
        row = [_dump(name, getattr(job, name)) for name in COLUMNS]
        with self._lock:
            # Column names come from records.COLUMNS; values are bound `?` parameters.
            self._db.execute(
                f"INSERT INTO jobs ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(row))})",  # noqa: S608
                row,
            )

    def update(self, job_id: str, **fields: Any) -> None:
        unknown = set(fields) - set(COLUMNS)
        if unknown:
            raise ValueError(f"unknown job fields {sorted(unknown)}")
        assignments = ", ".join(f"{name} = ?" for name in fields)
        values = [_dump(name, value) for name, value in fields.items()]
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
            row = self._db.execute(f"{_SELECT} WHERE idempotency_key = ?", [key]).fetchone()
        return None if row is None else self._row_to_job(row)

    def list_jobs(self, status: JobStatus | None = None, limit: int = 100) -> list[Job]:
        """Newest first."""
        where, args = ("WHERE status = ?", [status.value]) if status else ("", [])
        with self._lock:
            rows = self._db.execute(
                f"{_SELECT} {where} ORDER BY created_at DESC, rowid DESC LIMIT ?",
                [*args, limit],
            ).fetchall()
        return [self._row_to_job(r) for r in rows]

    def count_by_status(self) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute("SELECT status, COUNT(*) FROM jobs GROUP BY status").fetchall()
        counts = {s.value: 0 for s in JobStatus}
        counts.update({status: n for status, n in rows})
        return counts
