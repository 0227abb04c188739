"""Shared fixtures: a real MLflow server (SQLite, served artifacts) and the real service."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import httpx
import pytest
from support import AUTH, VENV_BIN, ServiceProcess, free_port, http_ok, wait_until


@pytest.fixture(scope="session")
def mlflow_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`mlflow server` from this venv on 127.0.0.1, SQLite backend, artifacts it serves."""
    root = tmp_path_factory.mktemp("mlflow")
    port = free_port()
    log = (root / "server.log").open("wb")
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
        start_new_session=True,
    )
    uri = f"http://127.0.0.1:{port}"
    try:
        wait_until(
            lambda: process.poll() is None and http_ok(f"{uri}/health"),
            180,
            f"mlflow server at {uri} (log: {root / 'server.log'})",
            interval=0.5,
        )
        yield uri
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


@pytest.fixture(scope="session")
def service(mlflow_uri: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    """The service as a process, with a bearer token and a small queue (2) to test limits."""
    data_dir = tmp_path_factory.mktemp("training-data")
    process = ServiceProcess(
        data_dir,
        {"MLFLOW_TRACKING_URI": mlflow_uri, "MAX_QUEUED_JOBS": "2"},
        data_dir.parent / "service.log",
    ).start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture()
def client(service: ServiceProcess) -> Iterator[httpx.Client]:
    with service.client() as http:
        yield http


@pytest.fixture()
def authed(service: ServiceProcess) -> Iterator[httpx.Client]:
    with service.client() as http:
        http.headers.update(AUTH)
        yield http


@pytest.fixture(scope="session")
def digits_dataset(service: ServiceProcess) -> dict:
    response = httpx.post(
        f"{service.url}/v1/datasets", json={"source": "digits"}, headers=AUTH, timeout=120
    )
    assert response.status_code == 201, response.text
    body: dict = response.json()
    return body
