"""Test helpers: free ports, waiting for HTTP, and running the service as a real process."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
# The one place a version is written; /version and the MLflow tags must all say this.
with (ROOT / "pyproject.toml").open("rb") as _pyproject:
    PYPROJECT_VERSION: str = tomllib.load(_pyproject)["project"]["version"]
TOKEN = "test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
# Named tokens of the shared test service (API_TOKENS) beside API_TOKEN, one scope each.
SCOPED_TOKENS = {"train": "trainer-token", "admin": "admin-token"}
API_TOKENS = f"trainer:train:{SCOPED_TOKENS['train']};janitor:admin:{SCOPED_TOKENS['admin']}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(
    predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.2
) -> Any:
    """Poll `predicate` until it returns something truthy; fail with `what` on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def http_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def start_mlflow_server(root: Path, port: int) -> subprocess.Popen[bytes]:
    """`mlflow server` from this venv on 127.0.0.1:`port`, SQLite backend and served artifacts
    under `root` (the same `root` and port again: the same server after a restart)."""
    root.mkdir(parents=True, exist_ok=True)
    with (root / "server.log").open("ab") as log:
        process = subprocess.Popen(
            [
                str(VENV_BIN / "mlflow"),
                "server",
                "--backend-store-uri",
                f"sqlite:///{root}/mlflow.db",
                "--artifacts-destination",
                str(root / "artifacts"),
                "--serve-artifacts",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                "1",
            ],  # fmt: skip
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own group: stop_process_group ends its workers too
        )
    uri = f"http://127.0.0.1:{port}"
    try:
        wait_until(
            lambda: process.poll() is None and http_ok(f"{uri}/health"),
            180,
            f"mlflow server at {uri} (log: {root / 'server.log'})",
            interval=0.5,
        )
    except AssertionError:
        stop_process_group(process)
        raise
    return process


def stop_process_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to a process started with start_new_session and its children; SIGKILL after 30 s."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(30)


class ServiceProcess:
    """`python -m training_service` on a free port, as the service runs in production."""

    def __init__(self, data_dir: Path, env: dict[str, str], log_path: Path) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "PYTHONPATH": str(ROOT / "src"),
            "API_TOKEN": TOKEN,
            "DATA_DIR": str(data_dir),
            "PORT": str(self.port),
            "HOST": "127.0.0.1",
            **env,
        }
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 90) -> ServiceProcess:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "training_service"],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its worker processes share its group: kill together
            )
        wait_until(
            lambda: self._alive() and http_ok(f"{self.url}/health"),
            timeout,
            f"the training service on {self.url} (log: {self.log_path})",
        )
        return self

    def _alive(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"service exited early; log:\n{self.log_path.read_text()}")
        return True

    def kill(self) -> None:
        """SIGKILL to the service and its training worker, like a container killed for
        memory: no shutdown code runs anywhere, so nothing ends the job's MLflow run."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(30)

    def stop(self) -> None:
        if self.process is not None:
            stop_process_group(self.process)

    def client(self) -> httpx.Client:
        # Generous: the first dataset request imports scikit-learn on a possibly busy CI box.
        return httpx.Client(base_url=self.url, timeout=120)


def wait_for_job(client: httpx.Client, job_id: str, statuses: set[str], timeout: float) -> dict:
    def job_in_state() -> dict | None:
        job = client.get(f"/v1/jobs/{job_id}").json()
        return job if job["status"] in statuses else None

    result: dict = wait_until(job_in_state, timeout, f"job {job_id} to reach {statuses}")
    return result
