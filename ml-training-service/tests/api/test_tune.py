"""POST /v1/tune with the local executor, against a real MLflow server and the real service
process: a 3-trial search registers its best trial, MLflow holds one parent run and one
child run per trial, bad search spaces are 422s naming the field, Idempotency-Key replays,
and a cancel mid-search leaves no run RUNNING. No mocks.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from mlflow import MlflowClient
from mlflow.entities import Run
from support import AUTH, ServiceProcess, wait_for_job, wait_until

EXPERIMENT, MODEL = "tune-tests", "tune-classifier"
#: Three short trials over two learning-rate decades and two batch sizes.
SEARCH = {
    "epochs": 2,
    "num_trials": 3,
    "seed": 7,
    "search_space": {
        "learning_rate": {"low": 0.003, "high": 0.03, "log": True},
        "batch_size": [64, 128],
    },
}
FINAL = {"succeeded", "failed", "cancelled"}


@pytest.fixture(scope="module")
def tune_service(
    mlflow_uri: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceProcess]:
    data_dir = tmp_path_factory.mktemp("tune-data")
    env = {"MLFLOW_TRACKING_URI": mlflow_uri, "EXPERIMENT": EXPERIMENT, "MODEL_NAME": MODEL}
    process = ServiceProcess(data_dir, env, data_dir.parent / "tune-service.log").start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="module")
def http(tune_service: ServiceProcess) -> Iterator[httpx.Client]:
    with tune_service.client() as client:
        client.headers.update(AUTH)
        yield client


@pytest.fixture(scope="module")
def dataset_id(http: httpx.Client) -> str:
    response = http.post("/v1/datasets", json={"source": "digits", "seed": 3})
    assert response.status_code == 201, response.text
    return str(response.json()["dataset_id"])


def children_of(client: MlflowClient, parent: Run) -> list[Run]:
    return list(
        client.search_runs(
            [parent.info.experiment_id],
            filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'",
        )
    )


def check_search_registered_its_best(
    client: MlflowClient, job: dict[str, Any], trials: int, model: str, metric: str
) -> None:
    """The parent run, its `trials` children, and the registered version (the best child's)."""
    assert job["status"] == "succeeded", job["error"]
    assert job["kind"] == "tune"
    assert job["progress"] == {"epoch": trials, "epochs": trials}
    assert job["tune"]["trials_done"] == trials and job["tune"]["trials_failed"] == 0
    parent = client.get_run(job["run_id"])
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["job_id"] == job["job_id"]
    assert parent.data.params["num_trials"] == str(trials)
    assert parent.data.params["metric"] == metric
    children = children_of(client, parent)
    assert len(children) == trials
    assert all(child.info.status == "FINISHED" for child in children)
    assert {child.data.tags["trial"] for child in children} == {str(n) for n in range(trials)}
    values = {child.info.run_id: child.data.metrics[metric] for child in children}
    best_value = max(values.values()) if metric == "test_accuracy" else min(values.values())
    assert parent.data.metrics[f"best_{metric}"] == pytest.approx(best_value)
    assert job["tune"]["best"]["value"] == pytest.approx(best_value)

    version = client.get_model_version_by_alias(model, "staging")
    assert version.version == job["model_version"] and version.tags["job_id"] == job["job_id"]
    assert values[version.run_id] == pytest.approx(best_value)  # the best child's model
    best_child = client.get_run(version.run_id)
    best = job["tune"]["best"]
    assert best_child.data.tags["trial"] == str(best["trial"])
    for name in ("batch_size", "architecture"):
        assert best_child.data.params[name] == str(best["params"][name])
    assert float(best_child.data.params["learning_rate"]) == pytest.approx(
        best["params"]["learning_rate"]
    )
    assert job["metrics"]["test_accuracy"] == pytest.approx(
        best_child.data.metrics["test_accuracy"]
    )


def test_a_local_search_registers_its_best_trial(
    http: httpx.Client, dataset_id: str, mlflow_uri: str
) -> None:
    body = {"dataset_id": dataset_id, **SEARCH}
    headers = {"Idempotency-Key": "tune-1"}
    response = http.post("/v1/tune", json=body, headers=headers)
    assert response.status_code == 202, response.text
    job_id = response.json()["job_id"]
    # The same key and body are the same job; another body under the key is a conflict.
    assert http.post("/v1/tune", json=body, headers=headers).json()["job_id"] == job_id
    other = http.post("/v1/tune", json={**body, "num_trials": 2}, headers=headers)
    assert other.status_code == 409

    job = wait_for_job(http, job_id, FINAL, 300)
    assert job["tune"]["num_trials"] == 3 and job["tune"]["metric"] == "test_accuracy"
    assert "learning_rate" not in job["params"] and job["params"]["epochs"] == 2
    check_search_registered_its_best(MlflowClient(mlflow_uri), job, 3, MODEL, "test_accuracy")


@pytest.mark.parametrize(
    ("search", "fragment"),
    [
        ({"search_space": {"learning_rate": {"low": 0.1, "high": 0.01}}}, "learning_rate"),
        ({"search_space": {"learning_rate": {"low": 0, "high": 0.01}}}, "learning_rate.low"),
        ({"search_space": {"learning_rate": {"low": 0.1, "high": 20}}}, "learning_rate"),
        ({"search_space": {"weight_decay": {"low": -1, "high": 0.01}}}, "weight_decay.low"),
        ({"search_space": {"batch_size": []}}, "search_space.batch_size"),
        ({"search_space": {"batch_size": [0]}}, "search_space.batch_size"),
        ({"search_space": {"batch_size": [32, 32]}}, "search_space.batch_size"),
        ({"search_space": {"architecture": []}}, "search_space.architecture"),
        ({"search_space": {"architecture": ["vgg99"]}}, "unknown architecture 'vgg99'"),
        ({"search_space": {"momentum": [0.9]}}, "search_space.momentum"),
        ({"num_trials": 0}, "body.num_trials"),
        ({"num_trials": 51}, "body.num_trials"),
        ({"metric": "val_accuracy"}, "unknown metric 'val_accuracy'"),
        ({"learning_rate": 0.01}, "body.learning_rate: Extra inputs"),
    ],
)
def test_bad_searches_are_422_naming_the_field(
    http: httpx.Client, search: dict[str, Any], fragment: str
) -> None:
    before = len(http.get("/v1/jobs").json()["jobs"])
    response = http.post("/v1/tune", json=search)
    assert response.status_code == 422, response.text
    assert fragment in response.json()["detail"], response.json()["detail"]
    assert len(http.get("/v1/jobs").json()["jobs"]) == before  # nothing was queued


def test_tune_needs_the_train_token(tune_service: ServiceProcess) -> None:
    with tune_service.client() as anonymous:
        assert anonymous.post("/v1/tune", json={}).status_code == 401


def check_cancel_mid_search(http: httpx.Client, client: MlflowClient, body: dict) -> None:
    """Cancel once a trial's child run exists: the job ends cancelled, no run stays RUNNING."""
    job_id = http.post("/v1/tune", json=body).json()["job_id"]

    def a_trial_runs() -> bool:
        run_id = http.get(f"/v1/jobs/{job_id}").json()["run_id"]
        return run_id is not None and bool(children_of(client, client.get_run(run_id)))

    wait_until(a_trial_runs, 240, f"a trial of search {job_id} to start")
    assert http.post(f"/v1/jobs/{job_id}/cancel").status_code == 202
    job = wait_for_job(http, job_id, FINAL, 120)
    assert job["status"] == "cancelled", job["error"]
    assert job["progress"]["epoch"] < body["num_trials"]
    parent = client.get_run(job["run_id"])
    assert parent.info.status == "KILLED"
    children = children_of(client, parent)
    assert children and all(child.info.status != "RUNNING" for child in children)
    assert "KILLED" in {child.info.status for child in children}


def test_cancel_mid_search_ends_every_run(
    http: httpx.Client, dataset_id: str, mlflow_uri: str
) -> None:
    body = {"dataset_id": dataset_id, "epochs": 200, "num_trials": 20, "register": False}
    check_cancel_mid_search(http, MlflowClient(mlflow_uri), body)


def test_failed_trials_are_failed_child_runs(
    mlflow_uri: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A network whose builder does not exist fails every trial: each is a FAILED child run
    with the reason, counted in trials_failed; the search fails naming it, parent FAILED."""
    from fastapi.testclient import TestClient

    from training_service import networks
    from training_service.app import create_app
    from training_service.config import Settings

    networks.register_network("broken_net", "custom_network:no_such_builder")
    settings = Settings(
        environment="local",
        data_dir=tmp_path_factory.mktemp("tune-failing"),
        mlflow_tracking_uri=mlflow_uri,
        experiment="tune-failing",
        job_executor="process",  # the spawned worker gets the registry, broken_net included
    )
    try:
        with TestClient(create_app(settings)) as local:
            dataset = local.post(
                "/v1/datasets", json={"source": "shapes", "count": 60, "image_size": 8}
            ).json()
            body = {
                "dataset_id": dataset["dataset_id"],
                "epochs": 1,
                "num_trials": 2,
                "search_space": {"architecture": ["broken_net"]},
            }
            accepted = local.post("/v1/tune", json=body)
            assert accepted.status_code == 202, accepted.text
            job_id = accepted.json()["job_id"]
            job = wait_until(
                lambda: (j := local.get(f"/v1/jobs/{job_id}").json())["status"] in FINAL and j,
                300,
                "the failing search",
            )
    finally:
        networks.NETWORKS.pop("broken_net", None)
    assert job["status"] == "failed"
    assert "all 2 trials of the search failed; first error: AttributeError" in job["error"]
    assert job["tune"]["trials_done"] == 2 and job["tune"]["trials_failed"] == 2
    assert job["tune"]["best"] is None and job["model_version"] is None
    client = MlflowClient(mlflow_uri)
    parent = client.get_run(job["run_id"])
    assert parent.info.status == "FAILED"
    children = children_of(client, parent)
    assert [child.info.status for child in children] == ["FAILED", "FAILED"]
    assert all("no_such_builder" in child.data.tags["failure"] for child in children)
