"""The job store in Postgres (DATABASE_URL set): several service replicas share one table.

- `lock` is a transaction on this replica's connection (and a reentrant thread lock around
  it); reads inside it lock the rows they return (`FOR UPDATE`), so a read and the write it
  decides (`lifecycle`) are atomic across replicas too. A lookup by Idempotency-Key also
  takes an advisory lock on the key: two replicas given the same new key queue one job; the
  unique constraint stays the last word (`DuplicateJobError`).
- `claim_next` takes the oldest queued job nobody else is claiming (`FOR UPDATE SKIP
  LOCKED`), marks it running, owned by this replica (`owner`) with a lease
  (`lease_expires_at`, database time) that `renew_leases` pushes forward while it runs.
- A job whose lease ran out was running on a replica that died: `interrupted_jobs` returns
  it, once, to whichever replica looks first; a replica that lost its lease (or cannot renew
  it) stops its job at the next batch (`is_cancel_requested`), so a job never runs twice.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import sql

from training_service.jobs.pg_migrations import connect, migrate
from training_service.jobs.records import COLUMNS, Job, JobNotFoundError, JobStatus, now_iso
from training_service.jobs.store import DuplicateJobError, check_fields, row_to_job

_COLUMNS = sql.SQL(", ").join(sql.Identifier(name) for name in COLUMNS)
_SELECT = sql.SQL("SELECT {} FROM jobs").format(_COLUMNS)


def _values(fields: dict[str, Any]) -> list[Any]:
    """Stored values; flags are INTEGER columns as in SQLite (Python bools become 0/1)."""
    return [int(v) if isinstance(v, bool) else v for v in check_fields(fields)]


class PostgresJobStore:
    """Jobs in a Postgres table shared by replicas; one connection per replica."""

    def __init__(self, database_url: str, *, lease_seconds: float = 30.0) -> None:
        self._url = database_url
        self.lease_seconds = lease_seconds
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._rlock = threading.RLock()
        self._depth = 0  # nesting of `lock` in the thread holding _rlock
        self._renewed = time.monotonic()
        self._conn = connect(database_url)
        migrate(self._conn)

    # -- connection and transactions -------------------------------------------------------

    def _connection(self) -> psycopg.Connection:
        """The connection, reopened when the server dropped it (never inside a transaction)."""
        if self._conn.closed and self._depth == 0:
            self._conn = connect(self._url)
        return self._conn

    @property
    def lock(self) -> Any:
        return self._transaction()

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        with self._rlock:
            if self._depth:  # nested: part of the transaction already open
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            conn = self._connection()
            self._depth = 1
            try:
                with conn.transaction():  # COMMIT, or ROLLBACK on an error
                    yield
            finally:
                self._depth = 0

    def _rows(self, query: Any, args: list[Any] | tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._rlock:
            return self._connection().execute(query, args).fetchall()

    def _locking(self, query: sql.Composable) -> sql.Composable:
        """`query FOR UPDATE` inside `lock` (the rows stay ours until it ends)."""
        return sql.SQL("{} FOR UPDATE").format(query) if self._depth else query

    def close(self) -> None:
        with self._rlock:
            self._conn.close()

    # -- records ---------------------------------------------------------------------------

    def insert(self, job: Job) -> None:
        values = _values({name: getattr(job, name) for name in COLUMNS})
        query = sql.SQL("INSERT INTO jobs ({}) VALUES ({})").format(
            _COLUMNS, sql.SQL(", ").join(sql.Placeholder() * len(values))
        )
        with self._rlock:
            try:
                with self._connection().transaction():  # a savepoint inside `lock`
                    self._conn.execute(query, values)
            except psycopg.errors.UniqueViolation as exc:
                if "idempotency_key" not in str(exc):
                    raise
                raise DuplicateJobError(job.idempotency_key) from None

    def update(self, job_id: str, **fields: Any) -> None:
        values = _values(fields)
        assignments = sql.SQL(", ").join(
            sql.SQL("{} = %s").format(sql.Identifier(name)) for name in fields
        )
        query = sql.SQL("UPDATE jobs SET {} WHERE job_id = %s").format(assignments)
        self._rows_affected(query, [*values, job_id])

    def _rows_affected(self, query: Any, args: list[Any]) -> int:
        with self._rlock:
            return self._connection().execute(query, args).rowcount

    def get(self, job_id: str) -> Job:
        rows = self._rows(self._locking(sql.SQL("{} WHERE job_id = %s").format(_SELECT)), [job_id])
        if not rows:
            raise JobNotFoundError(job_id)
        return row_to_job(rows[0])

    def is_cancel_requested(self, job_id: str) -> bool:
        """True when cancelled, when another replica took the job over, or when this replica
        could not renew its lease for a whole lease period (another may take it over)."""
        try:
            rows = self._rows(
                "SELECT cancel_requested <> 0 OR status <> 'running' OR owner IS DISTINCT FROM %s"
                " FROM jobs WHERE job_id = %s",
                [self.owner, job_id],
            )
        except psycopg.OperationalError:
            return time.monotonic() - self._renewed > self.lease_seconds
        return bool(rows and rows[0][0])

    def request_id_of(self, job_id: str) -> str | None:
        rows = self._rows("SELECT request_id FROM jobs WHERE job_id = %s", [job_id])
        return rows[0][0] if rows else None

    def by_idempotency_key(self, key: str) -> Job | None:
        with self._rlock:
            if self._depth:  # replicas handling the same key queue behind each other
                self._conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [key])
            query = self._locking(sql.SQL("{} WHERE idempotency_key = %s").format(_SELECT))
            rows = self._rows(query, [key])
        return row_to_job(rows[0]) if rows else None

    def list_jobs(self, status: JobStatus | None = None, limit: int = 100) -> list[Job]:
        """Newest first."""
        where, args = (sql.SQL(""), [])
        if status is not None:
            where, args = sql.SQL("WHERE status = %s"), [status.value]
        query = sql.SQL("{} {} ORDER BY created_at DESC, seq DESC LIMIT %s").format(_SELECT, where)
        return [row_to_job(r) for r in self._rows(self._locking(query), [*args, limit])]

    def count_by_status(self) -> dict[str, int]:
        rows = self._rows("SELECT status, COUNT(*) FROM jobs GROUP BY status")
        counts = {s.value: 0 for s in JobStatus}
        counts.update({status: n for status, n in rows})
        return counts

    # -- claims and leases -----------------------------------------------------------------

    def claim_next(self) -> Job | None:
        query = sql.SQL(
            "UPDATE jobs SET status = 'running', owner = %s, started_at = COALESCE(started_at, %s),"
            " lease_expires_at = now() + make_interval(secs => %s)"
            " WHERE job_id = (SELECT job_id FROM jobs WHERE status = 'queued'"
            "  ORDER BY created_at, seq LIMIT 1 FOR UPDATE SKIP LOCKED)"
            " RETURNING {}"
        ).format(_COLUMNS)
        rows = self._rows(query, [self.owner, now_iso(), self.lease_seconds])
        return row_to_job(rows[0]) if rows else None

    def owns(self, job_id: str) -> bool:
        rows = self._rows(
            "SELECT 1 FROM jobs WHERE job_id = %s AND status = 'running' AND owner = %s",
            [job_id, self.owner],
        )
        return bool(rows)

    def renew_leases(self) -> None:
        self._rows_affected(
            "UPDATE jobs SET lease_expires_at = now() + make_interval(secs => %s)"
            " WHERE status = 'running' AND owner = %s",
            [self.lease_seconds, self.owner],
        )
        self._renewed = time.monotonic()

    def interrupted_jobs(self, *, at_start: bool) -> list[Job]:
        """Running jobs whose lease ran out (or that never had one: rows older than leases),
        locked for the caller's transaction; other replicas skip them meanwhile."""
        query = sql.SQL(
            "{} WHERE status = 'running' AND (lease_expires_at IS NULL OR lease_expires_at < now())"
            " ORDER BY created_at, seq FOR UPDATE SKIP LOCKED"
        ).format(_SELECT)
        return [row_to_job(r) for r in self._rows(query)]
