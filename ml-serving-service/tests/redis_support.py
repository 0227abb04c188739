"""A real redis-server for the shared-state tests: a free port, a password, a temporary folder.

Debian's redis-server comes from `scripts/ensure_redis.sh` (the Makefile's test target runs
it). Without it the tests skip, unless REQUIRE_REDIS=1 or CI=true: then they fail.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis

from tests.support import free_port, stop


def redis_server_binary() -> str:
    """The redis-server path, or skip (fail when REQUIRE_REDIS=1 or CI=true)."""
    found = shutil.which("redis-server") or shutil.which("redis-server", path="/usr/bin")
    if found is not None:
        return found
    message = "redis-server is not installed: run scripts/ensure_redis.sh"
    if os.environ.get("REQUIRE_REDIS") == "1" or os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@dataclass
class RedisServer:
    """One redis-server process; `stop` and `start` again keep its port and password."""

    workdir: Path
    binary: str
    port: int = field(default_factory=free_port)
    password: str = field(default_factory=lambda: "pw-" + secrets.token_hex(12))
    proc: subprocess.Popen[bytes] | None = None

    def url(self, db: int = 1) -> str:
        return f"redis://:{self.password}@127.0.0.1:{self.port}/{db}"

    def start(self) -> None:
        """Start with an empty data set (no persistence), answering only with the password."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        conf = self.workdir / "redis.conf"
        conf.write_text(
            f"port {self.port}\nbind 127.0.0.1\nrequirepass {self.password}\n"
            f'dir {self.workdir}\nsave ""\nappendonly no\ndaemonize no\n'
        )
        conf.chmod(0o600)
        self.proc = subprocess.Popen(
            [self.binary, str(conf)],
            stdout=(self.workdir / "redis.log").open("ab"),
            stderr=subprocess.STDOUT,
        )
        client = redis.Redis(port=self.port, password=self.password, socket_timeout=1)
        deadline = time.monotonic() + 30
        while True:
            try:
                if client.ping():
                    return
            except redis.RedisError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    log = (self.workdir / "redis.log").read_text(errors="replace")[-2000:]
                    raise RuntimeError(f"redis-server did not start:\n{log}") from None
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)
            self.proc = None

    def client(self, db: int = 1) -> redis.Redis:
        return redis.Redis(port=self.port, password=self.password, db=db, decode_responses=True)
