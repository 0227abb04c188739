"""Fixtures of the scale suite: the compose profile `scale` in containers, started once.

Fixture names (stable: tests/scale/test_scale_failures.py uses them too)
  docker_client    session   docker.DockerClient; no engine: skip (a failure under CI)
  images           session   {NAME_IMAGE: tag} from scripts/build_images.sh (build/images.env)
  scale_stack      session   the running ScaleStack (scale_stack.py): `url(name)`, `http`
                             (trusts the session's CA; MLflow's viewer login rides along),
                             `variables` (.env: secrets and the scale switches), `exec(service,
                             argv)`, `status`, `wait_healthy`, `logs`, `hostnames()`
  scale_urls       session   {"airflow" | "mlflow" | "serving" | "training": https:// base URL},
                             all through the TLS proxy; MLflow and serving go on to `lb`
  scale_airflow    session   AirflowClient (scripts/embedded/airflow_api.py) as Airflow's admin
  scale_promoted   session   the pipeline then model_management, run once through Airflow:
                             {"version", "job", "pipeline_run_id", "management_run_id"}
  kill_container   function  kill_container(service): SIGKILL that service's container (it
                             stays down); after the test each killed one is started again and
                             waited healthy, so every test finds the whole stack
  client_token     session   serving's CLIENT_TOKEN (predict, feedback) as a Bearer header
Helpers in scale_stack.py: WORKERS (the two Celery worker services), hostname(stack, service),
start_again(stack, service, ready=None), scale_switches(variables), ScaleStack.kill(service).
Use `scale_promoted` for a production model rather than running the DAGs again: every run of
the pipeline costs minutes of the suite's 10-minute budget.

One stack for the whole folder (session scope), started once. Before it starts, the container
suite's stack of the same pytest session is removed (by file order that suite is done, and two
stacks at once do not fit a 2-core host); nothing of another session is touched. Leftovers of
a killed session carry the container suite's label: its next run removes them.
Testcontainers' settings must be in the environment before it is imported (see
tests/containers/conftest.py).
"""

from __future__ import annotations

import os

os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")
os.environ.setdefault("TESTCONTAINERS_HOST_OVERRIDE", "127.0.0.1")
os.environ.setdefault("TESTCONTAINERS_CONNECTION_MODE", "docker_host")

import subprocess  # noqa: E402 - the settings above must come first
import time  # noqa: E402
import urllib.request  # noqa: E402
from collections.abc import Callable, Generator, Iterator  # noqa: E402
from typing import Any  # noqa: E402

import docker  # noqa: E402
import pytest  # noqa: E402
from scale_stack import ROOT, ScaleStack, read_env_file  # noqa: E402

from scripts.embedded.airflow_api import AirflowClient  # noqa: E402
from scripts.embedded.demo import MANAGEMENT, PIPELINE, run_dag  # noqa: E402

BUILD_SCRIPT = ROOT / "scripts" / "build_images.sh"
BUILD_TIMEOUT = float(os.environ.get("CONTAINERS_BUILD_TIMEOUT", "2400"))
STACK_TIMEOUT = float(os.environ.get("SCALE_STACK_TIMEOUT", "480"))
PROXIED = ("airflow", "mlflow", "serving", "training")
# Added for test_scale_failures.py (see scale_stack below).
TASK_HEARTBEAT = {
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "20",
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
}

_running: list[ScaleStack] = []


@pytest.fixture(scope="session")
def docker_client() -> docker.DockerClient:
    try:
        client = docker.from_env(timeout=120)
        client.ping()
    except Exception as exc:  # noqa: BLE001 - any failure means "no engine here"
        # Counted as a failure under CI/REQUIRE_DOCKER by the root conftest.
        pytest.skip(f"no Docker engine ({exc}); run scripts/ensure_docker.sh")
    return client


@pytest.fixture(scope="session")
def images(docker_client: docker.DockerClient) -> dict[str, str]:
    """scripts/build_images.sh, as `make images` runs it (layer cache: seconds when unchanged)."""
    begin = time.monotonic()
    result = subprocess.run(
        ["bash", str(BUILD_SCRIPT)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(
            f"scripts/build_images.sh failed ({result.returncode}):\n"
            f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
        )
    print(f"images ready in {time.monotonic() - begin:.0f} s")
    return read_env_file(ROOT / "build" / "images.env")


def close_container_suite_stack(config: pytest.Config) -> None:
    """Remove the container suite's stack if this same session started it (file order: that
    suite is done by now). Only this process's own stack: other sessions' are left alone."""
    suffix = os.path.join("tests", "containers", "conftest.py")
    for plugin in config.pluginmanager.get_plugins():
        if str(getattr(plugin, "__file__", "") or "").endswith(suffix):
            for stack in list(getattr(plugin, "_running", [])):
                stack.close()


@pytest.fixture(scope="session")
def scale_stack(
    request: pytest.FixtureRequest, images: dict[str, str], docker_client: docker.DockerClient
) -> Iterator[ScaleStack]:
    close_container_suite_stack(request.config)
    stack = ScaleStack(images, docker_client)
    # Added for test_scale_failures.py: the scheduler fails (and retries) the task of a killed
    # worker after 20 s without a heartbeat, checked every 5 s (Airflow's defaults: 300 s, 10 s).
    stack.services["airflow-scheduler"].environment.update(TASK_HEARTBEAT)
    _running.append(stack)
    try:
        try:
            stack.start(timeout=STACK_TIMEOUT)
        except Exception as exc:
            pytest.fail(f"the scale stack did not start: {exc!r}\n{stack.all_logs(tail=60)}")
        print(f"scale stack up in {stack.startup_seconds['stack']:.0f} s: {stack.startup_seconds}")
        yield stack
    finally:
        _running.remove(stack)
        stack.close()


@pytest.fixture(scope="session")
def scale_urls(scale_stack: ScaleStack) -> dict[str, str]:
    return {name: scale_stack.url(name) for name in PROXIED}


@pytest.fixture(scope="session")
def scale_airflow(scale_stack: ScaleStack) -> Iterator[AirflowClient]:
    # AirflowClient calls urllib's urlopen without a context: for this session its https://
    # requests trust the stack's CA, and only that CA.
    urllib.request.install_opener(
        urllib.request.build_opener(urllib.request.HTTPSHandler(context=scale_stack.tls))
    )
    try:
        yield AirflowClient(
            scale_stack.url("airflow"), scale_stack.admin_user, scale_stack.admin_password
        )
    finally:
        urllib.request.install_opener(None)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def client_token(scale_stack: ScaleStack) -> dict[str, str]:
    return {"Authorization": f"Bearer {scale_stack.variables['CLIENT_TOKEN']}"}


@pytest.fixture(scope="session")
def scale_promoted(
    scale_stack: ScaleStack, scale_airflow: AirflowClient, scale_urls: dict[str, str]
) -> dict[str, Any]:
    """The pipeline, then model_management, once through Airflow (Celery workers)."""
    pipeline = run_dag(scale_airflow, PIPELINE, timeout=900)
    answer = scale_stack.http.get(f"{scale_urls['training']}/v1/jobs")
    assert answer.status_code == 200, f"GET /v1/jobs -> {answer.status_code}: {answer.text[:500]}"
    job = max(answer.json()["jobs"], key=lambda j: j["created_at"])
    assert job["status"] == "succeeded", job
    management = run_dag(scale_airflow, MANAGEMENT, timeout=600)
    return {
        "version": str(job["model_version"]),
        "job": job,
        "pipeline_run_id": pipeline.run_id,
        "management_run_id": management.run_id,
    }


@pytest.fixture
def kill_container(scale_stack: ScaleStack) -> Iterator[Callable[[str], None]]:
    killed: list[str] = []

    def kill(name: str) -> None:
        scale_stack.kill(name)
        killed.append(name)

    try:
        yield kill
    finally:
        for name in dict.fromkeys(killed):
            scale_stack.start_again(name)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A failing test (or fixture) shows the last log lines of every container."""
    report = yield
    if report.failed and _running:
        try:
            report.sections.append(("container logs", _running[-1].all_logs(tail=80)))
        except Exception as exc:  # noqa: BLE001 - never hide the real failure
            report.sections.append(("container logs", f"(could not read logs: {exc})"))
    return report
