"""Benchmark processes: free ports, servers started and awaited, CPU pinning, an idle core.

Every server runs pinned to core 0 and wrk to core 1 (with `taskset`, when present), so the
servers compete for the same CPU and the load driver never takes it from them.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ok(url: str, proc: subprocess.Popen[bytes], timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args} exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise TimeoutError(url)


@contextmanager
def process(
    args: list[str], env: dict[str, str], ready_url: str, log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen(args, env={**os.environ, **env}, stdout=out, stderr=out)
        try:
            wait_ok(ready_url, proc)
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


@contextmanager
def redis_server(work: Path, command: list[str]) -> Iterator[str]:
    """A redis-server with a password on a free port (no persistence); yields its STATE_URL."""
    import redis  # the service's own dependency

    port, password = free_port(), "bench-" + os.urandom(8).hex()
    conf = work / "redis.conf"
    conf.write_text(f"port {port}\nbind 127.0.0.1\nrequirepass {password}\nsave \"\"\n"
                    f"appendonly no\ndir {work}\n")  # fmt: skip
    with (work / "redis.log").open("wb") as out:
        proc = subprocess.Popen([*command, str(conf)], stdout=out, stderr=out)
        try:
            client = redis.Redis(port=port, password=password)
            deadline = time.monotonic() + 30
            while True:
                try:
                    client.ping()
                    break
                except redis.RedisError:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError("redis-server did not start") from None
                    time.sleep(0.05)
            yield f"redis://:{password}@127.0.0.1:{port}/1"
        finally:
            proc.terminate()
            proc.wait(timeout=20)


def core_busy(core: int, seconds: float = 0.5) -> float:
    """Fraction of `seconds` that `core` spent not idle (from /proc/stat)."""

    def sample() -> tuple[int, int]:
        for line in Path("/proc/stat").read_text().splitlines():
            if line.startswith(f"cpu{core} "):
                ticks = [int(v) for v in line.split()[1:]]
                return sum(ticks), ticks[3] + ticks[4]  # total, idle + iowait
        raise RuntimeError(f"no cpu{core} in /proc/stat")

    total0, idle0 = sample()
    time.sleep(seconds)
    total1, idle1 = sample()
    return 1 - (idle1 - idle0) / max(total1 - total0, 1)


def wait_server_core_idle(timeout: float = 60) -> None:
    """Wait until core 0 is quiet: a server still working off a backlog of requests after
    wrk stopped (mlflow at batch 256) would otherwise slow down the next server's run."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and core_busy(0) > 0.1:
        pass


def pinned(core: str, args: list[str]) -> list[str]:
    return ["taskset", "-c", core, *args] if shutil.which("taskset") else args
