"""/v1/train and /v1/jobs against a real MLflow server: the whole job life cycle.

The first test trains with the default body and checks everything MLflow received, down to
loading `models:/image-classifier@staging` with pyfunc and scoring the held-out digits.
"""

from __future__ import annotations

import json
import statistics
import time
from typing import Any

import httpx
import mlflow
import numpy as np
import pytest
from mlflow import MlflowClient
from support import PYPROJECT_VERSION, wait_for_job, wait_until

# Generous: worker start-up plus training on a shared 2-core CI machine.
JOB_TIMEOUT = 300


def test_default_request_trains_registers_and_serves(
    authed: httpx.Client, client: httpx.Client, mlflow_uri: str
) -> None:
    headers = {"Idempotency-Key": "pipeline-run-1"}
    response = authed.post("/v1/train", json={}, headers=headers)
    assert response.status_code == 202, response.text
    accepted = response.json()
    job_id = accepted["job_id"]
    assert accepted == {"job_id": job_id, "status": "queued", "status_url": f"/v1/jobs/{job_id}"}

    # A redelivered request (same key, same body) is the same job; another body is a conflict.
    replay = authed.post("/v1/train", json={}, headers=headers)
    assert replay.status_code == 202 and replay.json()["job_id"] == job_id
    conflict = authed.post("/v1/train", json={"epochs": 3}, headers=headers)
    assert conflict.status_code == 409 and "Idempotency-Key" in conflict.json()["detail"]

    # The API stays responsive while the job trains in its worker process.
    wait_for_job(client, job_id, {"running", "succeeded", "failed"}, JOB_TIMEOUT)
    latencies = []
    for _ in range(40):
        started = time.perf_counter()
        assert client.get("/health").status_code == 200
        latencies.append(time.perf_counter() - started)
        time.sleep(0.02)
    assert statistics.median(latencies) < 0.25, latencies

    job = wait_for_job(client, job_id, {"succeeded", "failed", "cancelled"}, JOB_TIMEOUT)
    assert job["status"] == "succeeded", job["error"]
    assert job["progress"] == {"epoch": 10, "epochs": 10}
    assert job["metrics"]["test_accuracy"] >= 0.97
    assert job["model_name"] == "image-classifier" and job["model_version"]
    assert job["error"] is None and job["started_at"] and job["finished_at"]
    assert job in client.get("/v1/jobs").json()["jobs"]

    tracking = MlflowClient(mlflow_uri)
    run = tracking.get_run(job["run_id"])
    dataset = client.get(f"/v1/datasets/{job['dataset_id']}").json()
    assert run.info.status == "FINISHED"
    assert run.data.params["epochs"] == "10" and run.data.params["learning_rate"] == "0.01"
    assert (
        run.data.params["architecture"] == "small_cnn" and run.data.params["optimizer"] == "adamw"
    )
    assert job["params"]["architecture"] == "small_cnn" and job["stopped_early_at"] is None
    assert run.data.tags["dataset_sha256"] == dataset["sha256"]
    assert run.data.tags["dataset_source"] == "digits"
    assert run.data.tags["job_id"] == job_id
    assert run.data.tags["service_version"] == PYPROJECT_VERSION
    history = tracking.get_metric_history(run.info.run_id, "test_accuracy")
    assert [m.step for m in history] == list(range(1, 11))
    assert run.inputs.dataset_inputs[0].dataset.name == job["dataset_id"]
    artifacts = {a.path for a in tracking.list_artifacts(run.info.run_id)}
    assert {"confusion_matrix.png", "training_curve.png", "classes.json"} <= artifacts

    version = tracking.get_model_version_by_alias("image-classifier", "staging")
    assert version.version == job["model_version"]
    assert version.run_id == job["run_id"]
    assert json.loads(version.tags["classes"]) == [str(i) for i in range(10)]
    assert version.tags["dataset_sha256"] == dataset["sha256"]
    assert version.tags["job_id"] == job_id
    assert version.tags["service_version"] == PYPROJECT_VERSION
    assert float(version.tags["test_accuracy"]) == pytest.approx(job["metrics"]["test_accuracy"])

    # The registered model loads anywhere through pyfunc and scores the held-out split.
    samples = client.get(
        f"/v1/datasets/{job['dataset_id']}/samples", params={"limit": 10_000}
    ).json()
    mlflow.set_tracking_uri(mlflow_uri)
    model = mlflow.pyfunc.load_model("models:/image-classifier@staging")
    assert model.metadata.metadata["classes"] == dataset["classes"]
    assert model.metadata.metadata["preprocessing"]["image_size"] == 8
    assert model.metadata.metadata["preprocessing"]["color_mode"] == "L"
    images = np.asarray(samples["instances"], dtype=np.float32)  # (N, C, H, W)
    logits = np.asarray(model.predict(images))
    assert logits.shape == (len(images), 10)
    predicted = [dataset["classes"][i] for i in logits.argmax(axis=1)]
    accuracy = np.mean([p == t for p, t in zip(predicted, samples["labels"], strict=True)])
    assert accuracy >= 0.95


def test_queue_limit_and_cancellation(
    authed: httpx.Client, client: httpx.Client, mlflow_uri: str
) -> None:
    wait_until(
        lambda: (
            not client.get("/v1/jobs", params={"status": "running"}).json()["jobs"]
            and not client.get("/v1/jobs", params={"status": "queued"}).json()["jobs"]
        ),
        JOB_TIMEOUT,
        "earlier jobs to finish",
    )
    long_job = {"epochs": 200, "register": False}
    running = authed.post("/v1/train", json=long_job).json()["job_id"]
    wait_for_job(client, running, {"running"}, JOB_TIMEOUT)
    queued = [authed.post("/v1/train", json=long_job).json()["job_id"] for _ in range(2)]
    full = authed.post("/v1/train", json=long_job)
    assert full.status_code == 429
    assert int(full.headers["retry-after"]) > 0
    assert "queue is full" in full.json()["detail"]

    first = authed.post(f"/v1/jobs/{queued[0]}/cancel")
    assert first.status_code == 200 and first.json()["status"] == "cancelled"
    stopping = authed.post(f"/v1/jobs/{running}/cancel")
    assert stopping.status_code == 202 and stopping.json()["status"] == "running"
    cancelled = wait_for_job(client, running, {"cancelled", "succeeded", "failed"}, 120)
    assert cancelled["status"] == "cancelled" and cancelled["progress"]["epoch"] < 200
    authed.post(f"/v1/jobs/{queued[1]}/cancel")
    wait_for_job(client, queued[1], {"cancelled"}, 120)
    run_id = cancelled["run_id"]
    wait_until(
        lambda: MlflowClient(mlflow_uri).get_run(run_id).info.status == "KILLED",
        30,
        "the MLflow run of the cancelled job to be KILLED",
    )

    again = authed.post(f"/v1/jobs/{running}/cancel")
    assert again.status_code == 409 and "already cancelled" in again.json()["detail"]
    listed = client.get("/v1/jobs", params={"status": "cancelled"}).json()["jobs"]
    assert {running, *queued} <= {j["job_id"] for j in listed}


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        ({"epochs": 0}, "body.epochs"),
        ({"epochs": 201}, "body.epochs"),
        ({"epochs": "ten"}, "body.epochs"),
        ({"batch_size": 0}, "body.batch_size"),
        ({"batch_size": 5000}, "body.batch_size"),
        ({"learning_rate": 0}, "body.learning_rate"),
        ({"learning_rate": 11}, "body.learning_rate"),
        ({"seed": -5}, "body.seed"),
        ({"register": "maybe"}, "body.register"),
        ({"epoch": 3}, "body.epoch: Extra inputs are not permitted"),
        ({"dataset_id": "ds-000000000000"}, "create it with POST /v1/datasets"),
        ("not an object", "body"),
    ],
)
def test_bad_train_requests_say_what_to_fix(
    authed: httpx.Client, payload: Any, fragment: str
) -> None:
    response = authed.post("/v1/train", json=payload)
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, str) and fragment in detail


def test_empty_idempotency_key_is_422(authed: httpx.Client) -> None:
    response = authed.post("/v1/train", json={}, headers={"Idempotency-Key": ""})
    assert response.status_code == 422 and "idempotency-key" in response.json()["detail"]


@pytest.mark.parametrize("method_path", ["POST /v1/train", "POST /v1/jobs/job-x/cancel"])
def test_mutations_need_the_token(client: httpx.Client, method_path: str) -> None:
    method, path = method_path.split()
    response = client.request(method, path, json={})
    assert response.status_code == 401
    assert "Authorization: Bearer" in response.json()["detail"]


def test_unknown_jobs_and_bad_filters(authed: httpx.Client, client: httpx.Client) -> None:
    assert client.get("/v1/jobs/job-nope").status_code == 404
    assert "GET /v1/jobs" in client.get("/v1/jobs/job-nope").json()["detail"]
    assert authed.post("/v1/jobs/job-nope/cancel").status_code == 404
    bad = client.get("/v1/jobs", params={"status": "done"})
    assert bad.status_code == 422 and "query.status" in bad.json()["detail"]
    assert client.get("/v1/jobs", params={"limit": 0}).status_code == 422
