"""Fixtures of the embedded suite: the real stack as local processes on free ports.

The stack is the one `make up` starts (scripts/embedded), in a temporary state folder with
free ports, so it never collides with a stack a developer has running. Airflow's own
schedules are off here (`use_job_schedule`): the tests trigger every run themselves.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from lifecycle import PromotedRun
from scripts.embedded.airflow_api import AirflowClient
from scripts.embedded.config import ROOT, StackConfig
from scripts.embedded.demo import MANAGEMENT, PIPELINE, run_dag
from scripts.embedded.stack import Stack, logs_text, print_logs


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    home: Path = tmp_path_factory.mktemp("stack")
    cfg = StackConfig.from_env(
        {
            "STACK_HOME": str(home),
            "STACK_VENVS": str(ROOT / ".venvs"),
            "MLFLOW_PORT": str(free_port()),
            "SERVING_PORT": str(free_port()),
            "TRAINING_PORT": str(free_port()),
            "AIRFLOW_PORT": str(free_port()),
            "PROMETHEUS_PORT": str(free_port()),
            "AIRFLOW_ADMIN_PASSWORD": "integration-tests",
            "AIRFLOW_USE_JOB_SCHEDULE": "false",
            "SERVING_POLL_INTERVAL": "2",
        }
    )
    running = Stack(cfg)
    try:
        running.up(timeout=240)
        yield running
    except BaseException:
        print_logs(running, 60)
        raise
    finally:
        running.down()


@pytest.fixture(scope="session")
def airflow(stack: Stack) -> AirflowClient:
    """The operator login (trigger, unpause, clear): the suite needs no admin rights."""
    cfg = stack.cfg
    return AirflowClient(cfg.airflow_url, "operator", cfg.airflow_password_of("operator"))


@pytest.fixture(scope="session")
def promoted_run(stack: Stack, airflow: AirflowClient) -> PromotedRun:
    """Run the lifecycle once per session, the way `make demo` does: train, then promote."""
    pipeline = run_dag(airflow, PIPELINE, timeout=600)
    jobs = httpx.get(f"{stack.cfg.training_url}/v1/jobs", timeout=10).json()["jobs"]
    job = max(jobs, key=lambda j: j["created_at"])
    management = run_dag(airflow, MANAGEMENT, timeout=300)
    return PromotedRun(pipeline, management, job)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    """On a failed test, print the stack's logs: the why is usually in a service log."""
    report = yield
    if report.when == "call" and report.failed and "stack" in getattr(item, "fixturenames", ()):
        stack = item.funcargs.get("stack")  # type: ignore[attr-defined]
        if isinstance(stack, Stack):
            report.sections.append(("embedded stack logs", logs_text(stack, 60)))
    return report
