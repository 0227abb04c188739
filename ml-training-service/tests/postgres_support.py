"""A real PostgreSQL cluster for the job-store tests: initdb in a temporary folder, a free
port, a password (scram), one fresh database per test.

The binaries come from PATH or /usr/lib/postgresql/<version>/bin (scripts/ensure_postgres.sh,
run by the Makefile's test target, installs Debian's postgresql when missing). Without them
the Postgres tests skip, unless REQUIRE_POSTGRES=1 or CI=true: then they fail. Postgres
refuses to run as root, so under root the cluster runs as the `postgres` (or `nobody`) user.
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
from support import free_port


def postgres_bin_dir() -> Path:
    """The folder holding initdb, pg_ctl and postgres, or skip (fail when required)."""
    found = shutil.which("initdb")
    candidates = [Path(found).resolve().parent] if found else []
    candidates += [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)]
    for folder in candidates:
        if all((folder / name).exists() for name in ("initdb", "pg_ctl", "postgres")):
            return folder
    message = "PostgreSQL (initdb, pg_ctl) is not installed: run scripts/ensure_postgres.sh"
    if os.environ.get("REQUIRE_POSTGRES") == "1" or os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def _run_as() -> dict[str, Any]:
    """Popen arguments that drop root (postgres refuses it) to an unprivileged user."""
    if os.geteuid() != 0:
        return {}
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            entry = pwd.getpwnam(name)
            return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
    raise RuntimeError("running as root without a `postgres` or `nobody` user for PostgreSQL")


@dataclass
class PostgresCluster:
    """One postgres server on 127.0.0.1:`port`; `url(db)` connects with the password."""

    bin_dir: Path
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="training-pg-")))
    port: int = field(default_factory=free_port)
    password: str = field(default_factory=lambda: "pw-" + secrets.token_hex(12))
    _names: itertools.count = field(default_factory=itertools.count)

    def _run(self, *args: str) -> None:
        subprocess.run(
            [str(self.bin_dir / args[0]), *args[1:]],
            check=True,
            capture_output=True,
            cwd=self.root,
            **_run_as(),
        )

    def start(self) -> PostgresCluster:
        drop = _run_as()
        if drop:
            os.chown(self.root, drop["user"], drop["group"])
        self.root.chmod(0o700)
        pwfile = self.root / "pw"
        pwfile.write_text(self.password)
        if drop:
            os.chown(pwfile, drop["user"], drop["group"])
        self._run(
            "initdb", "-D", str(self.root / "data"), "-U", "postgres", "--pwfile", str(pwfile),
            "--auth-host=scram-sha-256", "--auth-local=trust", "-E", "UTF8", "--no-sync",
        )  # fmt: skip
        options = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        self._run(
            "pg_ctl", "-D", str(self.root / "data"), "-l", str(self.root / "server.log"),
            "-o", options, "-w", "-t", "60", "start",
        )  # fmt: skip
        return self

    def stop(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self._run("pg_ctl", "-D", str(self.root / "data"), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str = "postgres", *, password: str | None = None) -> str:
        secret = self.password if password is None else password
        return f"postgresql+psycopg://postgres:{secret}@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A new empty database; returns its DATABASE_URL."""
        name = f"training_{next(self._names)}"
        with psycopg.connect(self.url().replace("+psycopg", ""), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")  # our own generated name
        return self.url(name)
