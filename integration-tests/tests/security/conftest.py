"""Fixtures of the security suite: a real `mlflow server --app-name basic-auth` and a real
Airflow api-server, started the way the embedded stack starts them (scripts/embedded).

Each runs alone from its venv on a free port, in a temporary state folder with its own
generated secrets, so the identities are exactly the ones `make up` creates.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from scripts.embedded.components import components
from scripts.embedded.config import ROOT, StackConfig
from scripts.embedded.processes import ProcessTable, http_ok, tail
from scripts.embedded.stack import Stack


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def config(home: Path) -> StackConfig:
    ports = ("MLFLOW_PORT", "SERVING_PORT", "TRAINING_PORT", "AIRFLOW_PORT", "PROMETHEUS_PORT")
    return StackConfig.from_env(
        {
            "STACK_HOME": str(home),
            "STACK_VENVS": str(ROOT / ".venvs"),
            "AIRFLOW_ADMIN_PASSWORD": "security-tests-admin",
            **{port: str(free_port()) for port in ports},
        }
    )


def start_one(stack: Stack, name: str, timeout: float) -> ProcessTable:
    """Spawn one component of the embedded stack and wait for its health check."""
    comp = next(c for c in components(stack.cfg) if c.name == name)
    venv_python = Path(comp.argv[0]).parent / "python"
    if not venv_python.exists():
        pytest.fail(f"{venv_python} is missing: run `make setup` at the repository root")
    table = stack.processes
    table.spawn(comp)
    deadline = time.monotonic() + timeout
    while not http_ok(comp.health_url or ""):
        if table.pid_of(name) is None or time.monotonic() > deadline:
            table.stop([name], 5)
            pytest.fail(f"{name} did not start:\n{tail(table.log_path(name), 40)}")
        time.sleep(0.5)
    return table


@pytest.fixture(scope="session")
def mlflow_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """MLflow with the basic-auth app and our plugin; users created by the stack's bootstrap."""
    stack = Stack(config(tmp_path_factory.mktemp("mlflow-auth")))
    (stack.cfg.home / "mlflow").mkdir(parents=True)
    table = start_one(stack, "mlflow", 180)
    try:
        stack.bootstrap_mlflow()
        yield stack
    finally:
        table.stop(["mlflow"], 10)


@pytest.fixture(scope="session")
def airflow_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Airflow's api-server alone (no DAG is parsed): the REST API and its auth manager."""
    stack = Stack(config(tmp_path_factory.mktemp("airflow-auth")))
    stack.prepare_airflow()
    table = start_one(stack, "airflow-api-server", 300)
    try:
        yield stack
    finally:
        table.stop(["airflow-api-server"], 10)
