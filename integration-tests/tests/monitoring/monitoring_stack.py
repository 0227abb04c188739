"""The monitoring suite's stack: the real services, scraped by a real Prometheus.

MLflow, training and serving start from their own venvs with the command lines of the
embedded stack (`scripts.embedded.components`), on free ports and without Airflow.
Prometheus is Debian's binary (scripts/ensure_prometheus.sh) running a copy of
infra/prometheus: the same jobs and rules, targets rewritten to 127.0.0.1 and a 1 s scrape
interval, so that rates exist seconds after the traffic instead of a minute.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from scripts.embedded.config import ROOT
from scripts.embedded.processes import tail

log = logging.getLogger("monitoring")
PROMETHEUS_DIR = ROOT / "infra" / "prometheus"
GRAFANA_DIR = ROOT / "infra" / "grafana"
SERVICES = ("mlflow", "training", "serving")
API_TOKEN = "monitoring-tests"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def binary(name: str) -> str:
    """A Prometheus tool on PATH; missing is a failure, not a skip (CI installs it)."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(
            f"`{name}` is not on PATH: run scripts/ensure_prometheus.sh (Debian's prometheus)"
        )
    return path


def wait_for(what: str, check: Callable[[], Any], timeout: float, every: float = 0.5) -> Any:
    """Poll `check` until it returns something truthy; fail with `what` after `timeout`."""
    start = time.monotonic()
    deadline = start + timeout
    while True:
        result = check()
        if result:
            log.info("%s: after %.1f s", what, time.monotonic() - start)
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


@dataclass
class Processes:
    """Processes this suite started, each in its own session, stopped by their own pid."""

    logs: Path
    running: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, name: str, argv: list[str], env: dict[str, str], cwd: Path = ROOT) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        with (self.logs / f"{name}.log").open("ab") as log:
            self.running[name] = subprocess.Popen(
                argv,
                cwd=cwd,
                env={**os.environ, **env},
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def check_alive(self, name: str) -> None:
        if self.running[name].poll() is not None:
            pytest.fail(f"{name} exited during start; last log lines:\n{self.tail(name)}")

    def tail(self, name: str, lines: int = 40) -> str:
        return tail(self.logs / f"{name}.log", lines)

    def stop(self, grace: float = 20.0) -> None:
        for proc in reversed(self.running.values()):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for proc in self.running.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


@dataclass(frozen=True)
class Services:
    mlflow_url: str
    training_url: str
    serving_url: str
    serving_port: int
    training_port: int
    # Basic auth of MLflow's orchestrator login: the one identity that moves `production`.
    mlflow_orchestrator: dict[str, str]

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {API_TOKEN}"}


@dataclass(frozen=True)
class Prometheus:
    url: str
    config_dir: Path

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query; a PromQL error fails the test with Prometheus' own message."""
        answer = httpx.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=10)
        body = answer.json()
        assert answer.status_code == 200 and body["status"] == "success", (expr, body)
        assert body["data"]["resultType"] == "vector", (expr, body["data"]["resultType"])
        return list(body["data"]["result"])

    def scalar(self, expr: str) -> float | None:
        result = self.query(expr)
        return float(result[0]["value"][1]) if result else None


def write_prometheus_copy(dest: Path, targets: dict[str, str]) -> Path:
    """The committed config with its rules, a 1 s interval and targets on 127.0.0.1."""
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    config["global"]["scrape_interval"] = "1s"
    config["global"]["scrape_timeout"] = "1s"
    config["global"]["evaluation_interval"] = "1s"
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    shutil.copytree(PROMETHEUS_DIR / "rules", dest / "rules")
    (dest / "targets").mkdir()
    for job in config["scrape_configs"]:
        (files,) = (sd["files"] for sd in job["file_sd_configs"])
        (path,) = files
        (dest / path).write_text(json.dumps([{"targets": [targets[job["job_name"]]]}]))
    return dest / "prometheus.yml"


@dataclass(frozen=True)
class Traffic:
    """What the traffic fixture did, to compare with what Prometheus saw."""

    model_name: str
    version: str
    predicted: int
    feedback: int
    correct: int
    rejected: int


def train_and_promote(svc: Services) -> tuple[str, str, str]:
    """Train on digits through the training API, then point `production` at the version."""
    dataset = httpx.post(
        f"{svc.training_url}/v1/datasets", json={"source": "digits"}, headers=svc.auth, timeout=60
    )
    assert dataset.status_code == 201, dataset.text
    dataset_id = dataset.json()["dataset_id"]
    submitted = httpx.post(
        f"{svc.training_url}/v1/train",
        json={"dataset_id": dataset_id, "epochs": 5},
        headers=svc.auth,
        timeout=30,
    )
    assert submitted.status_code in (200, 202), submitted.text
    status_url = f"{svc.training_url}{submitted.json()['status_url']}"

    def finished() -> dict[str, Any] | None:
        job: dict[str, Any] = httpx.get(status_url, timeout=10).json()
        return job if job["status"] in ("succeeded", "failed", "cancelled") else None

    job = wait_for("the training job", finished, timeout=300, every=1)
    assert job["status"] == "succeeded", job
    promoted = httpx.post(
        f"{svc.mlflow_url}/api/2.0/mlflow/registered-models/alias",
        json={"name": job["model_name"], "alias": "production", "version": job["model_version"]},
        headers=svc.mlflow_orchestrator,
        timeout=30,
    )
    assert promoted.status_code == 200, promoted.text
    return job["model_name"], str(job["model_version"]), dataset_id
