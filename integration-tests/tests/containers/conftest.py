"""Fixtures of the container suite: images built by the repository's own script, the stack.

Testcontainers settings must be in the environment before it is imported: Ryuk's image
cannot be pulled without a registry (cleanup is ours: `ContainerStack.close` at the end of
the session, `remove_leftovers` at the start), and this host runs inside a container
(/.dockerenv), which would otherwise make Testcontainers talk to a bridge gateway address.
Published ports are reached on 127.0.0.1 only, over HTTPS checked against the session's CA.
"""

from __future__ import annotations

import os

os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")
os.environ.setdefault("TESTCONTAINERS_HOST_OVERRIDE", "127.0.0.1")
os.environ.setdefault("TESTCONTAINERS_CONNECTION_MODE", "docker_host")

import subprocess  # noqa: E402 - the settings above must come first
import time  # noqa: E402
import urllib.request  # noqa: E402
from collections.abc import Generator, Iterator  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import docker  # noqa: E402
import pytest  # noqa: E402
from container_stack import ContainerStack, read_env_file, remove_leftovers  # noqa: E402

from scripts.embedded.airflow_api import AirflowClient  # noqa: E402
from scripts.embedded.demo import MANAGEMENT, PIPELINE, run_dag  # noqa: E402

ROOT = Path(__file__).resolve().parents[3]
BUILD_SCRIPT = ROOT / "scripts" / "build_images.sh"
# A cold offline build (base image, wheelhouses, five images) takes well under this.
BUILD_TIMEOUT = float(os.environ.get("CONTAINERS_BUILD_TIMEOUT", "2400"))
STACK_TIMEOUT = float(os.environ.get("CONTAINERS_STACK_TIMEOUT", "420"))
# build_images.sh targets of the services the container, monitoring and security suites run.
SUITE_IMAGES = ("postgres", "mlflow", "training", "serving", "airflow", "prometheus", "proxy")

_running: list[ContainerStack] = []


def docker_client_or_skip() -> docker.DockerClient:
    try:
        client = docker.from_env(timeout=120)
        client.ping()
    except Exception as exc:  # noqa: BLE001 - any failure means "no engine here"
        # Counted as a failure under CI/REQUIRE_DOCKER by the root conftest.
        pytest.skip(f"no Docker engine ({exc}); run scripts/ensure_docker.sh")
    return client


@pytest.fixture(scope="session")
def docker_client() -> docker.DockerClient:
    return docker_client_or_skip()


@pytest.fixture(scope="session")
def images(docker_client: docker.DockerClient) -> dict[str, str]:
    """Build the images (or reuse them: the script's layer cache and wheelhouse make a re-run
    with nothing changed take seconds) exactly the way `make images` and CI do: those of the
    default and monitoring services these suites start (not the profile scale's).

    Returns the tags it wrote to build/images.env (POSTGRES_IMAGE=..., ...)."""
    begin = time.monotonic()
    result = subprocess.run(
        ["bash", str(BUILD_SCRIPT), *SUITE_IMAGES],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT,
        check=False,
    )
    print(result.stdout[-3000:])
    if result.returncode != 0:
        pytest.fail(
            f"scripts/build_images.sh failed ({result.returncode}):\n"
            f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
        )
    print(f"images ready in {time.monotonic() - begin:.0f} s")
    return read_env_file(ROOT / "build" / "images.env")


@pytest.fixture(scope="session")
def container_stack(
    images: dict[str, str], docker_client: docker.DockerClient
) -> Iterator[ContainerStack]:
    remove_leftovers(docker_client)
    stack = ContainerStack(images, docker_client)
    _running.append(stack)
    try:
        try:
            stack.start(timeout=STACK_TIMEOUT)
        except Exception as exc:
            # The stack is removed before pytest reports this error: show the logs now.
            pytest.fail(f"the stack did not start: {exc!r}\n{stack.all_logs(tail=60)}")
        print(f"stack up in {stack.startup_seconds['stack']:.0f} s: {stack.startup_seconds}")
        yield stack
    finally:
        _running.remove(stack)
        stack.close()


@pytest.fixture(scope="session")
def container_airflow(container_stack: ContainerStack) -> Iterator[AirflowClient]:
    # AirflowClient (scripts/embedded) calls urllib's urlopen without a context: for this
    # session its https:// requests trust the stack's CA, and only that CA.
    urllib.request.install_opener(
        urllib.request.build_opener(urllib.request.HTTPSHandler(context=container_stack.tls))
    )
    try:
        yield AirflowClient(
            container_stack.url("airflow"),
            container_stack.admin_user,
            container_stack.admin_password,
        )
    finally:
        urllib.request.install_opener(None)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def promoted(container_stack: ContainerStack, container_airflow: AirflowClient) -> dict[str, Any]:
    """Run the pipeline and model management once through Airflow, for every test module.

    Returns the new `version`, the training `job` and the `pipeline_run_id` (the browser
    test looks for that run in Airflow's UI).
    """
    training = container_stack.url("training")
    pipeline = run_dag(container_airflow, PIPELINE, timeout=900)
    answer = container_stack.http.get(f"{training}/v1/jobs")
    assert answer.status_code == 200, f"GET /v1/jobs -> {answer.status_code}: {answer.text[:500]}"
    job = max(answer.json()["jobs"], key=lambda j: j["created_at"])
    assert job["status"] == "succeeded", job
    run_dag(container_airflow, MANAGEMENT, timeout=600)
    return {"version": str(job["model_version"]), "job": job, "pipeline_run_id": pipeline.run_id}


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
