"""A real local Ray cluster for the Ray executor's tests, and the rule for when Ray is absent.

`ray start --head --block` from this venv runs in its own session on a free port with its
own temp dir, so stopping it (its process group) never touches another Ray on the machine.
It runs with Ray's token auth and a token of its own (`auth_env`, which the service under
test gets too): without RAY_AUTH_MODE set, `ray start` would turn token auth on whenever
~/.ray/auth_token exists (any local `ray.init()` writes one), and a service started without
it would then be refused.
Without the `ray` extra the Ray tests skip with the reason; with REQUIRE_RAY=1 (set when
CI=true) they fail instead, so CI cannot pass by skipping them.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import secrets
import signal
import subprocess
from pathlib import Path

import pytest
from support import ROOT, VENV_BIN, wait_until

RAY_INSTALLED = importlib.util.find_spec("ray") is not None
RAY_REQUIRED = os.environ.get("REQUIRE_RAY") == "1" or os.environ.get("CI") == "true"
MISSING = "ray is not installed: `pip install .[ray]` (make setup does) to run the Ray tests"


def require_ray() -> None:
    """Skip (or, under REQUIRE_RAY=1 / CI=true, fail) when the ray extra is missing."""
    if RAY_INSTALLED:
        return
    if RAY_REQUIRED:
        pytest.fail(f"REQUIRE_RAY=1 but {MISSING}")
    pytest.skip(MISSING)


class RayHead:
    """One head node with `cpus` CPUs (the whole cluster), stopped with its process group."""

    def __init__(self, root: Path, port: int, cpus: int = 2) -> None:
        self.root = root
        self.address = f"127.0.0.1:{port}"
        self.log_path = root / "ray-head.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.token_path = root / "auth_token"
        #: What a Ray driver (the service) needs in its environment to join this cluster.
        self.auth_env = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(self.token_path)}
        self._args = [
            str(VENV_BIN / "ray"),
            "start",
            "--head",
            "--block",
            f"--num-cpus={cpus}",
            f"--port={port}",
            "--node-ip-address=127.0.0.1",
            "--dashboard-host=127.0.0.1",
            "--include-dashboard=false",
            "--disable-usage-stats",
            f"--temp-dir={root / 'tmp'}",
        ]

    def start(self) -> RayHead:
        self.root.mkdir(parents=True, exist_ok=True)
        self.token_path.write_text(secrets.token_hex(32))
        self.token_path.chmod(0o600)
        env = {
            **{k: v for k, v in os.environ.items() if k != "RAY_AUTH_TOKEN"},
            **self.auth_env,
            "PYTHONPATH": str(ROOT / "src"),
            "RAY_USAGE_STATS_ENABLED": "0",
        }
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self._args, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        wait_until(self._ready, 90, f"the Ray head at {self.address} (log: {self.log_path})", 1)
        return self

    def _ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"ray start exited; log:\n{self.log_path.read_text()}")
        return "Ray runtime started" in self.log_path.read_text(errors="replace")

    def train_worker_pids(self) -> list[int]:
        """Processes of this cluster running a Ray Train worker (`ray::RayTrainWorker...`)."""
        return self.pids_titled("RayTrainWorker")

    def pids_titled(self, word: str) -> list[int]:
        """Processes of this cluster (descendants of its `ray start`) whose title holds
        `word` (Ray renames a worker process after what it runs: `ray::<task or actor>`)."""
        assert self.process is not None
        parents: dict[int, int] = {}
        titles: dict[int, str] = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
                titles[int(entry.name)] = (entry / "cmdline").read_bytes().decode(errors="replace")
            except OSError:  # ended meanwhile
                continue
            parents[int(entry.name)] = int(stat.rpartition(")")[2].split()[1])

        def ours(pid: int) -> bool:
            while pid > 1:
                if pid == self.process.pid:  # type: ignore[union-attr]
                    return True
                pid = parents.get(pid, 0)
            return False

        return [pid for pid, title in titles.items() if word in title and ours(pid)]

    def stop(self) -> None:
        """SIGTERM to the head's process group (GCS, raylet, workers), SIGKILL what stays."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(15)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(15)
