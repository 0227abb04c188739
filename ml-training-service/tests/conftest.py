"""Shared fixtures: a real MLflow server (SQLite, served artifacts), the real service, a real
PostgreSQL cluster, and per-test job stores (each backend) and dataset stores for the
runner's unit tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from postgres_support import PostgresCluster, postgres_bin_dir
from support import (
    API_TOKENS,
    AUTH,
    ServiceProcess,
    free_port,
    start_mlflow_server,
    stop_process_group,
)

from training_service.data import DatasetStore
from training_service.jobs.store import JobStore, open_job_store

#: The lease of the unit tests' Postgres stores: a "crashed" runner's jobs are free this fast.
TEST_LEASE_SECONDS = 1.0


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


@pytest.fixture(params=["sqlite", "postgres"])
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], JobStore]]:
    """Opens this test's job store, as a new service process would (the same SQLite file or
    Postgres database each time): every job-store test runs against both backends."""
    url = request.getfixturevalue("postgres_url") if request.param == "postgres" else None
    opened: list[JobStore] = []

    def open_one() -> JobStore:
        store = open_job_store(tmp_path / "jobs.sqlite3", url, lease_seconds=TEST_LEASE_SECONDS)
        opened.append(store)
        return store

    yield open_one
    for store in opened:
        store.close()


@pytest.fixture()
def store(open_store: Callable[[], JobStore]) -> JobStore:
    """A job store of its own per test (unit tests of the job runner), on each backend."""
    return open_store()


@pytest.fixture()
def datasets(tmp_path: Path) -> DatasetStore:
    return DatasetStore(tmp_path / "datasets")


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    """One real PostgreSQL server for the session (skips when PostgreSQL is not installed)."""
    cluster = PostgresCluster(postgres_bin_dir()).start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture()
def postgres_url(postgres_cluster: PostgresCluster) -> str:
    """DATABASE_URL of a fresh, empty database (with the password)."""
    return postgres_cluster.create_database()
