"""Idempotency-Key over HTTP: a cleared Airflow run that posts its dataset and training
requests again recovers. Datasets are replayed (also after a restart), a failed or
cancelled job is retried as a new job, other bodies under a used key are 409."""

from __future__ import annotations

from pathlib import Path

import httpx
from support import AUTH, ServiceProcess, wait_for_job, wait_until

JOB_TIMEOUT = 300


def test_dataset_keys_replay_conflict_and_survive_a_restart(
    mlflow_uri: str, tmp_path: Path
) -> None:
    env = {"MLFLOW_TRACKING_URI": mlflow_uri, "JOB_EXECUTOR": "thread"}
    key = {"Idempotency-Key": "training_pipeline/manual__2026-11-30"}
    body = {"source": "digits", "seed": 3}
    first = ServiceProcess(tmp_path / "data", env, tmp_path / "first.log").start()
    try:
        with first.client() as http:
            http.headers.update(AUTH)
            created = http.post("/v1/datasets", json=body, headers=key)
            assert created.status_code == 201, created.text
            replay = http.post("/v1/datasets", json={**body, "noise": 0.0}, headers=key)
            assert replay.status_code == 200 and replay.json() == created.json()
            conflict = http.post("/v1/datasets", json={**body, "seed": 4}, headers=key)
            assert conflict.status_code == 409
            assert "Idempotency-Key" in conflict.json()["detail"]
            unkeyed = http.post("/v1/datasets", json=body)
            assert unkeyed.status_code == 201
            assert unkeyed.json()["dataset_id"] != created.json()["dataset_id"]
    finally:
        first.stop()
    second = ServiceProcess(tmp_path / "data", env, tmp_path / "second.log").start()
    try:
        with second.client() as http:
            http.headers.update(AUTH)
            after_restart = http.post("/v1/datasets", json=body, headers=key)
            assert after_restart.status_code == 200
            assert after_restart.json() == created.json()
    finally:
        second.stop()


def test_a_cancelled_job_is_retried_under_the_same_key(
    authed: httpx.Client, client: httpx.Client
) -> None:
    wait_until(
        lambda: not client.get("/v1/jobs", params={"status": "queued"}).json()["jobs"],
        JOB_TIMEOUT,
        "the queue to drain",
    )
    key = {"Idempotency-Key": "training_pipeline/scheduled__retry"}
    body = {"epochs": 200, "register": False}
    first = authed.post("/v1/train", json=body, headers=key)
    assert first.status_code == 202
    first_id = first.json()["job_id"]
    authed.post(f"/v1/jobs/{first_id}/cancel")
    assert wait_for_job(client, first_id, {"cancelled"}, JOB_TIMEOUT)["status"] == "cancelled"

    retry = authed.post("/v1/train", json=body, headers=key)
    assert retry.status_code == 202, retry.text
    retry_id = retry.json()["job_id"]
    assert retry_id != first_id and retry.json()["status"] == "queued"
    assert authed.post("/v1/train", json=body, headers=key).json()["job_id"] == retry_id
    conflict = authed.post("/v1/train", json={**body, "epochs": 3}, headers=key)
    assert conflict.status_code == 409
    assert client.get(f"/v1/jobs/{first_id}").json()["status"] == "cancelled"
    authed.post(f"/v1/jobs/{retry_id}/cancel")
    wait_for_job(client, retry_id, {"cancelled"}, JOB_TIMEOUT)
