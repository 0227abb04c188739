"""POST /v1/tune with TRAINING_EXECUTOR=ray: a Ray Tune search (OptunaSearch) on a real
local Ray cluster (2 CPUs), a real MLflow server and the real service process. A 6-trial
search registers its best trial with the 6 nested runs under its parent (the issue's CI
test), and a cancel mid-search leaves no run RUNNING. Skipped (failed under REQUIRE_RAY=1)
without the `ray` extra; no mocks.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from mlflow import MlflowClient
from ray_support import RayHead, require_ray
from support import AUTH, ServiceProcess, free_port, wait_for_job
from test_tune import FINAL, check_cancel_mid_search, check_search_registered_its_best

MODEL = "ray-tune-classifier"


@pytest.fixture(scope="module")
def ray_head(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RayHead]:
    require_ray()
    head = RayHead(tmp_path_factory.mktemp("ray-tune"), free_port(), cpus=2).start()
    try:
        yield head
    finally:
        head.stop()


@pytest.fixture(scope="module")
def http(
    ray_head: RayHead, mlflow_uri: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[httpx.Client]:
    data_dir = tmp_path_factory.mktemp("ray-tune-data")
    env = {
        "MLFLOW_TRACKING_URI": mlflow_uri,
        "TRAINING_EXECUTOR": "ray",
        "RAY_ADDRESS": ray_head.address,
        **ray_head.auth_env,
        "EXPERIMENT": "ray-tune-tests",
        "MODEL_NAME": MODEL,
    }
    process = ServiceProcess(data_dir, env, data_dir.parent / "ray-tune-service.log").start()
    try:
        with process.client() as client:
            client.headers.update(AUTH)
            yield client
    finally:
        process.stop()


@pytest.fixture(scope="module")
def dataset_id(http: httpx.Client) -> str:
    response = http.post("/v1/datasets", json={"source": "digits", "seed": 4})
    assert response.status_code == 201, response.text
    return str(response.json()["dataset_id"])


def test_a_ray_tune_search_registers_its_best_of_six_nested_trials(
    http: httpx.Client, dataset_id: str, mlflow_uri: str
) -> None:
    body = {
        "dataset_id": dataset_id,
        "epochs": 2,
        "num_trials": 6,
        "seed": 11,
        "metric": "test_loss",
        "search_space": {"batch_size": [64, 128]},
    }
    response = http.post("/v1/tune", json=body)
    assert response.status_code == 202, response.text
    job = wait_for_job(http, response.json()["job_id"], FINAL, 420)
    assert job["tune"]["mode"] == "min"
    client = MlflowClient(mlflow_uri)
    check_search_registered_its_best(client, job, 6, MODEL, "test_loss")
    assert client.get_run(job["run_id"]).data.tags["executor"] == "ray"


def test_cancel_mid_ray_search_ends_every_run(
    http: httpx.Client, dataset_id: str, mlflow_uri: str
) -> None:
    body = {"dataset_id": dataset_id, "epochs": 200, "num_trials": 8, "register": False}
    check_cancel_mid_search(http, MlflowClient(mlflow_uri), body)
