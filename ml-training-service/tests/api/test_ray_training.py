"""TRAINING_EXECUTOR=ray against a real local Ray cluster (2 CPUs), a real MLflow server
and the real service process: data-parallel jobs, their MLflow run, a worker killed mid-job,
requests the cluster cannot place, and cancel. No mocks; skipped (failed under
REQUIRE_RAY=1) without the `ray` extra.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import httpx
import pytest
from mlflow import MlflowClient
from ray_support import RayHead, require_ray
from support import AUTH, ServiceProcess, free_port, wait_for_job, wait_until

from training_service.data import DatasetStore
from training_service.params import TrainingParams

#: Few epochs of digits: the two-worker run must land within this of the one-process run.
EPOCHS, TOLERANCE = 4, 0.02


@pytest.fixture(scope="module")
def ray_head(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RayHead]:
    require_ray()
    head = RayHead(tmp_path_factory.mktemp("ray"), free_port(), cpus=2).start()
    try:
        yield head
    finally:
        head.stop()


@pytest.fixture(scope="module")
def ray_service(
    ray_head: RayHead, mlflow_uri: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceProcess]:
    data_dir = tmp_path_factory.mktemp("ray-training-data")
    env = {
        "MLFLOW_TRACKING_URI": mlflow_uri,
        "TRAINING_EXECUTOR": "ray",
        "RAY_ADDRESS": ray_head.address,
        **ray_head.auth_env,
        "EXPERIMENT": "ray-tests",
        "MODEL_NAME": "ray-classifier",
    }
    process = ServiceProcess(data_dir, env, data_dir.parent / "ray-service.log").start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="module")
def http(ray_service: ServiceProcess) -> Iterator[httpx.Client]:
    with ray_service.client() as client:
        client.headers.update(AUTH)
        yield client


@pytest.fixture(scope="module")
def dataset_id(http: httpx.Client) -> str:
    response = http.post("/v1/datasets", json={"source": "digits", "seed": 3})
    assert response.status_code == 201, response.text
    return str(response.json()["dataset_id"])


def _submit(http: httpx.Client, dataset_id: str, **options: object) -> str:
    body = {"dataset_id": dataset_id, "seed": 5, **options}
    response = http.post("/v1/train", json=body)
    assert response.status_code == 202, response.text
    return str(response.json()["job_id"])


def test_two_workers_reach_the_accuracy_of_one_and_log_one_run(
    http: httpx.Client, ray_service: ServiceProcess, dataset_id: str, mlflow_uri: str
) -> None:
    job_id = _submit(http, dataset_id, epochs=EPOCHS, num_workers=2)
    job = wait_for_job(http, job_id, {"succeeded", "failed", "cancelled"}, 240)
    assert job["status"] == "succeeded", job["error"]
    assert job["progress"] == {"epoch": EPOCHS, "epochs": EPOCHS}
    assert job["params"]["num_workers"] == 2 and job["model_version"] is not None

    from training_service.train import fit

    snapshot = DatasetStore(ray_service.data_dir / "datasets").load(dataset_id)
    alone = fit(snapshot, TrainingParams(epochs=EPOCHS, seed=5)).final.test_accuracy
    accuracy = job["metrics"]["test_accuracy"]
    assert accuracy >= 0.9, accuracy
    assert abs(accuracy - alone) <= TOLERANCE, (accuracy, alone)

    client = MlflowClient(tracking_uri=mlflow_uri)
    experiment = client.get_experiment_by_name("ray-tests")
    runs = client.search_runs([experiment.experiment_id], filter_string=f"tags.job_id = '{job_id}'")
    assert len(runs) == 1  # rank 0 alone logs: one run per job, not one per worker
    run = runs[0]
    assert run.info.run_id == job["run_id"] and run.info.status == "FINISHED"
    assert run.data.params["num_workers"] == "2" and run.data.tags["executor"] == "ray"
    history = client.get_metric_history(run.info.run_id, "test_accuracy")
    assert sorted(m.step for m in history) == list(range(1, EPOCHS + 1))
    version = client.get_model_version_by_alias("ray-classifier", "staging")
    assert version.version == job["model_version"] and version.tags["job_id"] == job_id


def test_a_one_worker_job_trains_alone_in_a_reused_ray_worker_process(
    http: httpx.Client, ray_head: RayHead, ray_service: ServiceProcess, dataset_id: str
) -> None:
    job = wait_for_job(
        http, _submit(http, dataset_id, epochs=EPOCHS), {"succeeded", "failed", "cancelled"}, 240
    )
    assert job["status"] == "succeeded", job["error"]
    assert job["params"]["num_workers"] == 1 and job["progress"]["epoch"] == EPOCHS

    from training_service.train import fit

    snapshot = DatasetStore(ray_service.data_dir / "datasets").load(dataset_id)
    alone = fit(snapshot, TrainingParams(epochs=EPOCHS, seed=5)).final.test_accuracy
    assert abs(job["metrics"]["test_accuracy"] - alone) <= TOLERANCE, (job["metrics"], alone)

    # Two long jobs, one after the other: each trains in a `ray::train_alone` task, in the
    # same process (torch and MLflow imported once), and no Ray Train worker group exists.
    seen: list[int] = []
    for _ in range(2):
        job_id = _submit(http, dataset_id, epochs=200, register=False)
        wait_until(
            lambda job_id=job_id: http.get(f"/v1/jobs/{job_id}").json()["progress"]["epoch"] >= 1,
            180,
            f"job {job_id} to finish an epoch",
        )
        (pid,) = ray_head.pids_titled("ray::train_alone")
        assert ray_head.train_worker_pids() == []
        seen.append(pid)
        assert http.post(f"/v1/jobs/{job_id}/cancel").status_code == 202
        cancelled = wait_for_job(http, job_id, {"succeeded", "failed", "cancelled"}, 60)
        assert cancelled["status"] == "cancelled", cancelled["error"]
    assert seen[0] == seen[1], seen


def test_a_killed_worker_fails_the_job_and_ends_its_run(
    http: httpx.Client, ray_head: RayHead, dataset_id: str, mlflow_uri: str
) -> None:
    job_id = _submit(http, dataset_id, epochs=200, num_workers=2, register=False)
    wait_until(
        lambda: http.get(f"/v1/jobs/{job_id}").json()["progress"]["epoch"] >= 1,
        180,
        f"job {job_id} to finish an epoch",
    )
    pids = ray_head.train_worker_pids()
    assert len(pids) == 2, pids
    os.kill(max(pids), signal.SIGKILL)  # one rank, as the kernel's OOM killer would

    job = wait_for_job(http, job_id, {"succeeded", "failed", "cancelled"}, 120)
    assert job["status"] == "failed"
    # The killed rank is named with how its process ended (not only the survivor's symptom).
    assert "Ray Train workers failed: rank" in job["error"], job["error"]
    assert "the worker process ended" in job["error"], job["error"]
    run = MlflowClient(tracking_uri=mlflow_uri).get_run(job["run_id"])
    assert run.info.status == "FAILED"
    assert run.data.tags["failure"] == job["error"]


def test_cancel_stops_a_ray_job_and_kills_its_run(
    http: httpx.Client, dataset_id: str, mlflow_uri: str
) -> None:
    job_id = _submit(http, dataset_id, epochs=200, num_workers=2, register=False)
    wait_until(
        lambda: http.get(f"/v1/jobs/{job_id}").json()["progress"]["epoch"] >= 1,
        180,
        f"job {job_id} to finish an epoch",
    )
    assert http.post(f"/v1/jobs/{job_id}/cancel").status_code == 202
    job = wait_for_job(http, job_id, {"succeeded", "failed", "cancelled"}, 60)
    assert job["status"] == "cancelled", job["error"]
    assert MlflowClient(tracking_uri=mlflow_uri).get_run(job["run_id"]).info.status == "KILLED"


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"num_workers": 3}, ["num_workers=3", "= 3 CPUs", "has 2 CPUs"]),
        ({"cpus_per_worker": 3}, ["cpus_per_worker=3", "largest Ray node has 2 CPUs"]),
    ],
)
def test_more_than_the_cluster_has_is_a_422(
    http: httpx.Client, dataset_id: str, options: dict[str, int], words: list[str]
) -> None:
    before = len(http.get("/v1/jobs").json()["jobs"])
    response = http.post("/v1/train", json={"dataset_id": dataset_id, **options})
    assert response.status_code == 422, response.text
    for word in words:
        assert word in response.json()["detail"]
    assert len(http.get("/v1/jobs").json()["jobs"]) == before  # nothing was queued


def test_a_service_without_the_clusters_token_gets_a_503_that_says_so(
    ray_head: RayHead, mlflow_uri: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    data_dir = tmp_path_factory.mktemp("ray-no-token")
    env = {
        "MLFLOW_TRACKING_URI": mlflow_uri,
        "TRAINING_EXECUTOR": "ray",
        "RAY_ADDRESS": ray_head.address,
        "RAY_AUTH_MODE": "disabled",  # this driver sends no token; the cluster wants one
    }
    log_path = data_dir.parent / "ray-no-token-service.log"
    process = ServiceProcess(data_dir, env, log_path).start()
    try:
        with process.client() as client:
            client.headers.update(AUTH)
            created = client.post("/v1/datasets", json={"source": "digits", "seed": 3})
            assert created.status_code == 201, created.text
            body = {"dataset_id": created.json()["dataset_id"], "epochs": 1}
            response = client.post("/v1/train", json=body)
            assert response.status_code == 503, response.text
            detail = response.json()["detail"]
            assert "refused this service's authentication token" in detail
            assert "RAY_AUTH_TOKEN_PATH" in detail
            assert client.get("/v1/jobs").json()["jobs"] == []  # nothing was queued
    finally:
        process.stop()
    assert ray_head.token_path.read_text() not in log_path.read_text()
