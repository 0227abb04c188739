"""The Postgres job schema as numbered migrations, applied at start under an advisory lock.

Why not Alembic: the schema is one table, written in plain SQL beside the code that reads it;
Alembic would bring SQLAlchemy into the API process (seconds of imports, a second connection
layer beside psycopg) for no feature we use. Each migration runs once, in order, in one
transaction with its row in `training_schema_migrations` (Postgres DDL is transactional: a
failed migration leaves nothing behind). `pg_advisory_xact_lock` serialises replicas that
start at once: the first migrates, the others wait, then find every version applied.

Rules for a new migration: append it (never edit an applied one); a column added to
`records.Job` needs one here (a test compares the table with `records.COLUMNS`).
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit, urlunsplit

import psycopg

log = logging.getLogger(__name__)

# An arbitrary constant naming "the training service migrates its schema" for advisory locks.
MIGRATION_LOCK_ID = 0x7261696E696E67  # "raining" in ASCII: stable across versions

MIGRATIONS: tuple[tuple[int, str, str], ...] = (
    (
        1,
        "jobs table",
        """
        CREATE TABLE jobs (
            seq BIGINT GENERATED ALWAYS AS IDENTITY,
            job_id TEXT PRIMARY KEY,
            status TEXT NOT NULL,
            params TEXT NOT NULL,
            register INTEGER NOT NULL,
            dataset_id TEXT NOT NULL,
            epochs INTEGER NOT NULL,
            epoch INTEGER NOT NULL DEFAULT 0,
            metrics TEXT,
            run_id TEXT,
            model_name TEXT,
            model_version TEXT,
            error TEXT,
            idempotency_key TEXT UNIQUE,
            request_sha256 TEXT,
            created_at TEXT NOT NULL,
            started_at TEXT,
            finished_at TEXT,
            cancel_requested INTEGER NOT NULL DEFAULT 0,
            request_id TEXT,
            stopped_early_at INTEGER
        );
        CREATE INDEX jobs_status_created ON jobs (status, created_at);
        """,
    ),
    (
        2,
        "job leases",
        """
        ALTER TABLE jobs ADD COLUMN owner TEXT;
        ALTER TABLE jobs ADD COLUMN lease_expires_at TIMESTAMPTZ;
        """,
    ),
)

HEAD = MIGRATIONS[-1][0]


def libpq_url(database_url: str) -> str:
    """DATABASE_URL as libpq takes it: SQLAlchemy's `postgresql+psycopg://` loses its driver."""
    parts = urlsplit(database_url)
    scheme = parts.scheme.split("+", 1)[0]
    if scheme not in {"postgresql", "postgres"}:
        raise ValueError(
            f"DATABASE_URL must start with postgresql:// or postgresql+psycopg:// "
            f"(got a {parts.scheme or 'missing'}:// URL)"
        )
    return urlunsplit(parts._replace(scheme="postgresql"))


def describe(database_url: str) -> str:
    """host:port/database of DATABASE_URL, for logs and errors (never the password)."""
    parts = urlsplit(database_url)
    host = parts.hostname or "localhost"
    return f"{host}:{parts.port or 5432}{parts.path or '/'}"


def connect(database_url: str, *, autocommit: bool = True) -> psycopg.Connection:
    """A connection, or a RuntimeError naming the server (without the password) and why."""
    try:
        return psycopg.connect(libpq_url(database_url), autocommit=autocommit, connect_timeout=10)
    except psycopg.Error as exc:
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        password = urlsplit(database_url).password
        if password:
            reason = reason.replace(password, "***")
        raise RuntimeError(
            f"cannot connect to the job database {describe(database_url)} (DATABASE_URL): {reason}"
        ) from None


def migrate(conn: psycopg.Connection) -> list[int]:
    """Bring the schema to HEAD; returns the versions applied now (empty: already there)."""
    applied_now: list[int] = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", [MIGRATION_LOCK_ID])
        conn.execute(
            "CREATE TABLE IF NOT EXISTS training_schema_migrations ("
            " version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
            " applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
        )
        done = {row[0] for row in conn.execute("SELECT version FROM training_schema_migrations")}
        newer = sorted(v for v in done if v > HEAD)
        if newer:
            raise RuntimeError(
                f"the job database has schema version {newer[-1]}, newer than this service "
                f"knows ({HEAD}): run a service version at least as new as the database"
            )
        for version, name, sql in MIGRATIONS:
            if version in done:
                continue
            conn.execute(sql)  # our own constant SQL, never input
            conn.execute(
                "INSERT INTO training_schema_migrations (version, name) VALUES (%s, %s)",
                [version, name],
            )
            log.info("job database migrated to version %d (%s)", version, name)
            applied_now.append(version)
    return applied_now
