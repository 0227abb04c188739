"""Issue #9 on the real service: request ids, JSON logs, and reference statistics in MLflow.

One short training job (with an X-Request-ID) runs against the session's real MLflow server;
the tests then read what the job left behind: its record, its MLflow run and registered
model, and the service's own log file (service and worker process write to it).
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import mlflow
import numpy as np
import pytest
from mlflow import MlflowClient
from mlflow.models import Model
from support import AUTH, ServiceProcess, wait_for_job, wait_until

JOB_TIMEOUT = 300
REQUEST_ID = "training_pipeline/manual__2026-11-26T08:00:00+00:00"
REQUIRED_KEYS = {"ts", "level", "logger", "message", "service"}


def log_lines(service: ServiceProcess) -> list[dict[str, Any]]:
    """Every line of the service's log as JSON (fails on a line that is not a JSON object)."""
    entries = []
    for number, line in enumerate(service.log_path.read_text().splitlines(), 1):
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            pytest.fail(f"{service.log_path}:{number} is not JSON: {line!r}")
        assert isinstance(entry, dict), line
        entries.append(entry)
    return entries


@pytest.fixture(scope="module")
def traced_job(service: ServiceProcess, digits_dataset: dict) -> dict:
    """A 2-epoch job on the session's digits snapshot, submitted with an X-Request-ID."""
    with service.client() as http:
        http.headers.update(AUTH)
        body = {"dataset_id": digits_dataset["dataset_id"], "epochs": 2}
        headers = {"X-Request-ID": REQUEST_ID, "Idempotency-Key": "observability-1"}
        response = http.post("/v1/train", json=body, headers=headers)
        assert response.status_code == 202, response.text
        assert response.headers["x-request-id"] == REQUEST_ID
        job = wait_for_job(http, response.json()["job_id"], {"succeeded", "failed"}, JOB_TIMEOUT)
    assert job["status"] == "succeeded", job["error"]
    return job


def test_request_id_is_echoed_or_generated(client: httpx.Client) -> None:
    assert client.get("/health", headers={"X-Request-ID": "abc-1"}).headers["x-request-id"] == (
        "abc-1"
    )
    generated = client.get("/health").headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated)
    assert client.get("/health").headers["x-request-id"] != generated
    # Unusable ids (spaces, too long) are replaced rather than written into logs and tags.
    for bad in ("two words", "x" * 201):
        echoed = client.get("/health", headers={"X-Request-ID": bad}).headers["x-request-id"]
        assert re.fullmatch(r"[0-9a-f]{32}", echoed)
    # Error answers carry it too: 401, 404, 422.
    for method, path in (("POST", "/v1/train"), ("GET", "/v1/jobs/job-nope")):
        response = client.request(method, path, json={}, headers={"X-Request-ID": "err-1"})
        assert response.status_code in {401, 404} and response.headers["x-request-id"] == "err-1"
    invalid = client.get("/v1/jobs", params={"limit": 0}, headers={"X-Request-ID": "err-2"})
    assert invalid.status_code == 422 and invalid.headers["x-request-id"] == "err-2"


def test_job_keeps_the_request_id_of_its_creation(
    traced_job: dict, authed: httpx.Client, client: httpx.Client, mlflow_uri: str
) -> None:
    assert traced_job["request_id"] == REQUEST_ID
    assert client.get(f"/v1/jobs/{traced_job['job_id']}").json()["request_id"] == REQUEST_ID
    # A replay (same Idempotency-Key and body) under another id is still the first request's job.
    replay = authed.post(
        "/v1/train",
        json={"dataset_id": traced_job["dataset_id"], "epochs": 2},
        headers={"X-Request-ID": "retry-2", "Idempotency-Key": "observability-1"},
    )
    assert replay.json()["job_id"] == traced_job["job_id"]
    assert replay.headers["x-request-id"] == "retry-2"
    assert client.get(f"/v1/jobs/{traced_job['job_id']}").json()["request_id"] == REQUEST_ID
    run = MlflowClient(mlflow_uri).get_run(traced_job["run_id"])
    assert run.data.tags["request_id"] == REQUEST_ID
    assert run.data.tags["job_id"] == traced_job["job_id"]


def test_logs_are_json_lines_with_request_ids(
    traced_job: dict, service: ServiceProcess, client: httpx.Client
) -> None:
    client.get("/v1/jobs", headers={"X-Request-ID": "log-check-1"})
    # The access line is written once the response is sent: give it a moment.
    entries = wait_until(
        lambda: (
            (lines := log_lines(service))
            and any(e.get("request_id") == "log-check-1" for e in lines)
            and lines
        ),
        10,
        "the access line of the request",
    )
    for entry in entries:
        assert set(entry) >= REQUIRED_KEYS, entry
        assert entry["service"] == "ml-training-service"
        stamp = datetime.fromisoformat(entry["ts"])
        assert stamp.utcoffset() == timedelta(0), entry["ts"]
    # uvicorn's own loggers write through the same formatter.
    assert any(
        e["logger"] == "uvicorn.error" and "Uvicorn running on" in e["message"] for e in entries
    )
    # The access line of a request carries its id, route template and status.
    access = [e for e in entries if e.get("request_id") == "log-check-1"]
    assert [(e["logger"], e["route"], e["status"]) for e in access] == [
        ("training_service.access", "/v1/jobs", 200)
    ]

    job_id = traced_job["job_id"]
    job_lines = [e for e in entries if e.get("job_id") == job_id]
    assert job_lines and all(e["request_id"] == REQUEST_ID for e in job_lines)
    loggers = {e["logger"] for e in job_lines}
    assert {"training_service.jobs", "training_service.worker"} <= loggers
    # The worker process (another pid than the service) logs with the job's request id.
    assert service.process is not None
    worker = [e for e in job_lines if "pid" in e]
    assert worker and all(e["pid"] != service.process.pid for e in worker)
    epochs = [e["epoch"] for e in job_lines if "epoch" in e]
    assert epochs == [1, 2]


def test_model_carries_training_input_statistics(
    traced_job: dict, client: httpx.Client, mlflow_uri: str, tmp_path: Path
) -> None:
    samples = client.get(
        f"/v1/datasets/{traced_job['dataset_id']}/samples",
        params={"split": "train", "limit": 10_000},
    ).json()
    train = np.asarray(samples["instances"], dtype=np.float32).reshape(len(samples["labels"]), -1)
    dataset = client.get(f"/v1/datasets/{traced_job['dataset_id']}").json()
    assert len(train) == dataset["n_train"]
    expected_mean, expected_std = train.mean(axis=0), train.std(axis=0)
    assert expected_std.max() > 0.1  # a real split, not a constant image

    # The MLmodel file of the registered version, as the serving side downloads it.
    mlflow.set_tracking_uri(mlflow_uri)  # models:/ URIs resolve through the global registry
    local = mlflow.artifacts.download_artifacts(
        artifact_uri=f"models:/image-classifier/{traced_job['model_version']}",
        dst_path=str(tmp_path / "model"),
    )
    stats = Model.load(str(Path(local) / "MLmodel")).metadata["input_stats"]
    assert stats["count"] == dataset["n_train"]
    assert len(stats["mean"]) == len(stats["std"]) == 64
    np.testing.assert_allclose(stats["mean"], expected_mean, atol=1e-5)
    np.testing.assert_allclose(stats["std"], expected_std, atol=1e-5)
    # Row-major: pixel (0, 3) of the 8x8 image is element 3, pixel (3, 0) is element 24.
    images = train.reshape(-1, 8, 8)
    assert stats["mean"][3] == pytest.approx(images[:, 0, 3].mean(), abs=1e-5)
    assert stats["mean"][24] == pytest.approx(images[:, 3, 0].mean(), abs=1e-5)

    # The same statistics as a run artifact.
    artifact = mlflow.artifacts.download_artifacts(
        run_id=traced_job["run_id"],
        artifact_path="input_stats.json",
        dst_path=str(tmp_path / "run"),
        tracking_uri=mlflow_uri,
    )
    assert json.loads(Path(artifact).read_text()) == stats


def test_text_log_format(mlflow_uri: str, tmp_path: Path) -> None:
    env = {"MLFLOW_TRACKING_URI": mlflow_uri, "LOG_FORMAT": "text", "JOB_EXECUTOR": "thread"}
    service = ServiceProcess(tmp_path / "data", env, tmp_path / "text.log").start()
    try:
        with service.client() as http:
            assert http.get("/v1/jobs", headers={"X-Request-ID": "text-1"}).status_code == 200
    finally:
        service.stop()
    lines = service.log_path.read_text().splitlines()
    assert any(" INFO uvicorn.error [-] Uvicorn running on" in line for line in lines), lines
    access = [line for line in lines if "[text-1]" in line]
    assert (
        len(access) == 1
        and " INFO training_service.access [text-1] GET /v1/jobs 200 " in (access[0])
    )
    for line in lines:
        with pytest.raises(json.JSONDecodeError):
            json.loads(line)
