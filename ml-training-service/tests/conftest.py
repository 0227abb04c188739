"""Shared fixtures: a real MLflow server (SQLite, served artifacts), the real service, and
per-test job and dataset stores for the runner's unit tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support import (
    API_TOKENS,
    AUTH,
    ServiceProcess,
    free_port,
    start_mlflow_server,
    stop_process_group,
)

from training_service.data import DatasetStore
from training_service.jobs.store import JobStore


@pytest.fixture(scope="session")
def mlflow_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`mlflow server` from this venv on 127.0.0.1, SQLite backend, artifacts it serves."""
    port = free_port()
    process = start_mlflow_server(tmp_path_factory.mktemp("mlflow"), port)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process_group(process)


@pytest.fixture(scope="session")
def service(mlflow_uri: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    """The service as a process, with API_TOKEN, two named tokens of one scope each, and a
    small queue (2) to test limits."""
    data_dir = tmp_path_factory.mktemp("training-data")
    process = ServiceProcess(
        data_dir,
        {"MLFLOW_TRACKING_URI": mlflow_uri, "MAX_QUEUED_JOBS": "2", "API_TOKENS": API_TOKENS},
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


@pytest.fixture()
def store(tmp_path: Path) -> JobStore:
    """A job store of its own per test (unit tests of the job runner)."""
    return JobStore(tmp_path / "jobs.sqlite3")


@pytest.fixture()
def datasets(tmp_path: Path) -> DatasetStore:
    return DatasetStore(tmp_path / "datasets")
