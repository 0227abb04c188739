"""The README's Compose commands, run as written, on the real docker-compose.yml.

    docker-compose up -d
    docker-compose logs -f mlflow
    docker-compose exec airflow airflow --help
    docker-compose down

They run from the repository root with Debian's Compose 1.29 (installed by
scripts/ensure_docker.sh). What `.env` would hold comes from the environment instead, which
Compose lets override `.env`: fresh secrets, a fresh CA and certificate (`CERTS_DIR`, made by
scripts/make_certs.sh), the images just built, a project name of this session's own and free
host ports, so the stack never collides with a developer's. The
test runs before the suite's own stack starts (file order), and removes its volumes at the
end (`down -v`; the plain `down` it checks keeps them, as the README says).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest
import tls
from container_stack import ROOT, fresh_variables, wait_for

COMPOSE = shutil.which("docker-compose") or "/usr/bin/docker-compose"
PORTS = ("MLFLOW_PORT", "SERVING_PORT", "TRAINING_PORT", "AIRFLOW_PORT")
ANSI = re.compile(r"\x1b\[[0-9;]*m")  # colours: Compose's service prefixes, Airflow's help


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def compose_env(images: dict[str, str]) -> Iterator[dict[str, str]]:
    if not os.path.exists(COMPOSE):
        pytest.fail("docker-compose is not installed: run scripts/ensure_docker.sh")
    project = f"mlops-seed-{uuid.uuid4().hex[:8]}"
    certs = tempfile.mkdtemp(prefix="mlops-seed-certs-")
    tls.make_certs(Path(certs))
    env = {
        **os.environ,
        **fresh_variables(images),
        "COMPOSE_PROJECT_NAME": project,
        "CERTS_DIR": certs,
        **{name: str(free_port()) for name in PORTS},
    }
    try:
        yield env
    finally:
        shutil.rmtree(certs, ignore_errors=True)
        subprocess.run(
            [COMPOSE, "down", "-v", "--remove-orphans", "--timeout", "10"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            timeout=180,
            check=False,
        )


def compose(env: dict[str, str], *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [COMPOSE, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def project_containers(client: docker.DockerClient, project: str) -> list[Any]:
    """The project's containers, running or not, as docker-py objects."""
    selector = {"label": f"com.docker.compose.project={project}"}
    return list(client.containers.list(all=True, filters=selector))


def follow_logs(env: dict[str, str], service: str, seconds: float) -> tuple[str, bool]:
    """`docker-compose logs -f SERVICE` for a while: what it printed, whether it still ran."""
    with subprocess.Popen(
        [COMPOSE, "logs", "-f", service],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
    ) as follower:
        time.sleep(seconds)
        following = follower.poll() is None
        follower.terminate()
        output, _ = follower.communicate(timeout=30)
    return ANSI.sub("", output), following


def test_the_readme_compose_commands_work_as_written(
    compose_env: dict[str, str], docker_client: docker.DockerClient
) -> None:
    env, project = compose_env, compose_env["COMPOSE_PROJECT_NAME"]

    up = compose(env, "up", "-d", timeout=900)
    if up.returncode != 0:
        states = compose(env, "ps", timeout=60).stdout
        logs = compose(env, "logs", "--tail", "40", timeout=120).stdout
        pytest.fail(f"docker-compose up -d failed:\n{up.stderr}\n{states}\n{logs}")

    def all_healthy() -> bool:
        states = {
            c.labels["com.docker.compose.service"]: (
                c.status,
                (c.attrs["State"].get("Health") or {}).get("Status"),
            )
            for c in project_containers(docker_client, project)
        }
        running = {name: s for name, s in states.items() if name != "airflow-init"}
        return len(running) == 9 and all(s == ("running", "healthy") for s in running.values())

    wait_for("every compose service healthy", all_healthy, timeout=600, interval=3)
    airflow = f"https://127.0.0.1:{env['AIRFLOW_PORT']}/api/v2/monitor/health"
    trusted = tls.client_context(Path(env["CERTS_DIR"]) / "ca.crt")
    assert httpx.get(airflow, verify=trusted, timeout=30).status_code == 200

    output, following = follow_logs(env, "mlflow", seconds=5)
    assert following, f"`docker-compose logs -f mlflow` exited instead of following:\n{output}"
    mlflow_lines = [line for line in output.splitlines() if line.startswith("mlflow_")]
    assert mlflow_lines, f"no mlflow log lines:\n{output}"
    assert not any(line.startswith(("training_", "serving_")) for line in output.splitlines())

    # As a person types it: with a terminal (`script` gives the command one).
    helped = subprocess.run(
        ["script", "-qefc", f"{COMPOSE} exec airflow airflow --help", "/dev/null"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    help_text = ANSI.sub("", helped.stdout)
    assert helped.returncode == 0, help_text + helped.stderr
    assert re.search(r"usage:\s+airflow\b.*GROUP_OR_COMMAND", help_text, re.IGNORECASE), help_text

    down = compose(env, "down", timeout=300)
    assert down.returncode == 0, f"docker-compose down failed:\n{down.stdout}\n{down.stderr}"
    assert project_containers(docker_client, project) == []
    volumes = docker_client.volumes.list(filters={"label": f"com.docker.compose.project={project}"})
    assert volumes, "docker-compose down must keep the data volumes (down -v deletes them)"
