"""Test helpers: ports, process lifecycles, a tiny digits model registered like training does."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

import httpx
import mlflow
import numpy as np
import torch
from mlflow.models import infer_signature
from mlflow.tracking import MlflowClient
from torch import nn

BIN = Path(sys.executable).parent
CLASSES = [str(i) for i in range(10)]
ROOT = Path(__file__).resolve().parents[1]
# The one place a version is written; /version must say this.
with (ROOT / "pyproject.toml").open("rb") as _pyproject:
    PYPROJECT_VERSION: str = tomllib.load(_pyproject)["project"]["version"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 90.0) -> None:
    """Poll url until 200; fail early with the process's log if it died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out = log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"process exited with {proc.returncode}:\n{out}")
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer 200 within {timeout} s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass
class Running:
    """A server process started by a test and the URL it answers on."""

    url: str
    proc: subprocess.Popen[bytes]

    def stop(self) -> None:
        stop(self.proc)


MlflowServer = Running
Service = Running


def start_mlflow(workdir: Path) -> MlflowServer:
    """A real `mlflow server` on SQLite with proxied artifacts, from this venv."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    proc = subprocess.Popen(
        [
            str(BIN / "mlflow"), "server",
            "--backend-store-uri", f"sqlite:///{workdir}/mlflow.db",
            "--artifacts-destination", str(workdir / "artifacts"),
            "--serve-artifacts",
            "--host", "127.0.0.1", "--port", str(port),
            "--workers", "1",
        ],
        # A file, not a pipe nobody reads: a full pipe would block the server mid-session.
        stdout=(workdir / "mlflow.log").open("wb"),
        stderr=subprocess.STDOUT,
        env={
            **os.environ,
            "PATH": f"{BIN}:{os.environ.get('PATH', '')}",
            # The job runner spawns a dozen processes the registry does not need.
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        },
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    # Generous: the server imports Flask, FastAPI and migrates SQLite, slow on a busy CPU.
    wait_http(f"{url}/health", proc, workdir / "mlflow.log", timeout=300)
    return MlflowServer(url, proc)


def start_service(log: Path | None = None, **env: str) -> Service:
    """The service under test, as deployed: `python -m serving_service` on real uvicorn.

    Its output goes to `log` (tests that read the logs), else to a temporary file.
    """
    port = free_port()
    full_env = {
        **os.environ,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src"),
        **env,
    }
    if log is None:
        log = Path(tempfile.mkdtemp(prefix="serving-test-")) / "service.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "serving_service"],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        env=full_env,
    )
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/health", proc, log, timeout=180)
    return Service(url, proc)


def wait_until(predicate, timeout: float, interval: float = 0.1) -> float:  # type: ignore[no-untyped-def]
    """Seconds it took predicate() to become true; AssertionError on timeout."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():
            return time.monotonic() - start
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")


# --- a tiny model, logged exactly like ml-training-service logs its models -----------------


class TinyNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class NaNNet(nn.Module):
    """Loads fine, predicts garbage: the smoke test must refuse it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)[:, :10] * float("nan")


def train_tiny(x: np.ndarray, y: np.ndarray, seed: int = 0, steps: int = 300) -> TinyNet:
    torch.manual_seed(seed)
    model = TinyNet()
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    for _ in range(steps):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(xt), yt)
        loss.backward()
        opt.step()
    return model.eval()


def register(
    tracking_uri: str,
    name: str,
    module: nn.Module,
    example: np.ndarray,
    *,
    alias: str | None = None,
    test_accuracy: float = 0.0,
    serialization_format: str | None = None,
    input_stats: dict[str, object] | None = None,
    classes: list[str] | None = None,
    metadata: dict[str, object] | None = None,
) -> str:
    """Log with mlflow.pytorch (pt2 by default), register, tag classes; returns the version.

    `classes` default to the digits; `metadata` adds MLmodel metadata (`preprocessing`).
    """
    classes = classes or CLASSES
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    mlflow.set_experiment("serving-tests")
    module = module.cpu().eval()
    with torch.no_grad():
        out = module(torch.from_numpy(example)).numpy()
    kwargs: dict[str, object] = (
        {"serialization_format": serialization_format} if serialization_format else {}
    )
    with mlflow.start_run():
        mlflow.log_metric("test_accuracy", test_accuracy)
        info = mlflow.pytorch.log_model(
            module,
            name="model",
            input_example=example,
            signature=infer_signature(example, out),
            metadata={
                "classes": classes,
                **({"input_stats": input_stats} if input_stats else {}),
                **(metadata or {}),
            },
            registered_model_name=name,
            # Skips MLflow's slow import-tracing of requirements; the format is unchanged.
            pip_requirements=["torch==2.13.0"],
            **kwargs,
        )
    version = str(info.registered_model_version)
    client = MlflowClient(tracking_uri, registry_uri=tracking_uri)
    client.set_model_version_tag(name, version, "classes", json.dumps(classes))
    client.set_model_version_tag(name, version, "test_accuracy", str(test_accuracy))
    if alias:
        client.set_registered_model_alias(name, alias, version)
    return version
