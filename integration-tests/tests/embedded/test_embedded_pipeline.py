"""The main job end to end: Airflow's real scheduler drives the real services.

The flow is the one `make demo` runs: trigger `mlflow_orchestration_pipeline` through
Airflow's REST API, then `model_management`; the `production` alias must move to the new
version and the serving service must answer with it, accurately, on held-out digits.
The fault case crashes the training service in the middle of a job, then clears the failed
run through the REST API: the same run must recover on its own dataset with a new job.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import httpx

from lifecycle import PromotedRun
from scripts.embedded.airflow_api import AirflowClient
from scripts.embedded.demo import MANAGEMENT, MODEL_NAME, PIPELINE, wait_until_served
from scripts.embedded.stack import Stack


def aliases(stack: Stack) -> dict[str, str]:
    answer = httpx.get(
        f"{stack.cfg.mlflow_url}/api/2.0/mlflow/registered-models/get",
        params={"name": MODEL_NAME},
        headers=stack.cfg.mlflow_auth_header(),
        timeout=10,
    )
    answer.raise_for_status()
    return {a["alias"]: a["version"] for a in answer.json()["registered_model"].get("aliases", [])}


def jobs(stack: Stack) -> list[dict[str, Any]]:
    answer = httpx.get(f"{stack.cfg.training_url}/v1/jobs", timeout=10)
    answer.raise_for_status()
    return sorted(answer.json()["jobs"], key=lambda j: j["created_at"])


def test_pipeline_trains_registers_and_promotes(stack: Stack, promoted_run: PromotedRun) -> None:
    job = promoted_run.job
    assert promoted_run.pipeline.state == "success"
    assert job["status"] == "succeeded", job
    assert (job.get("metrics") or {}).get("test_accuracy", 0) >= 0.9, job
    version = promoted_run.version
    assert promoted_run.management.state == "success"
    current = aliases(stack)
    assert current.get("production") == version, current
    assert current.get("staging") == version, current

    served = wait_until_served(stack.cfg, version, timeout=60)
    assert served["alias"] == "production"

    samples = httpx.get(
        f"{stack.cfg.training_url}/v1/datasets/{job['dataset_id']}/samples",
        params={"split": "test", "limit": 10_000},
        timeout=30,
    ).json()
    assert len(samples["instances"]) >= 300, "the held-out split should be the whole test set"
    answer = httpx.post(
        f"{stack.cfg.serving_url}/v1/predict", json={"instances": samples["instances"]}, timeout=60
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["model"]["version"] == version
    hits = sum(p == t for p, t in zip(body["predictions"], samples["labels"], strict=True))
    accuracy = hits / len(samples["labels"])
    assert accuracy >= 0.9, f"served accuracy {accuracy:.3f} on held-out digits"


def test_training_crash_fails_the_run_clearly_then_clearing_it_recovers(
    stack: Stack, airflow: AirflowClient
) -> None:
    known = {j["job_id"] for j in jobs(stack)}
    # The recovered run updates the staging asset: no model_management run may start from it
    # while the later tests use the served model.
    airflow.pause(MANAGEMENT)
    airflow.unpause(PIPELINE)
    run_id = airflow.trigger(PIPELINE)

    # Wait for the job this run submitted to start training, then crash the service.
    deadline = time.monotonic() + 120
    job: dict[str, Any] | None = None
    while time.monotonic() < deadline:
        fresh = [j for j in jobs(stack) if j["job_id"] not in known]
        if fresh and fresh[-1]["status"] == "running":
            job = fresh[-1]
            break
        time.sleep(0.2)
    assert job is not None, "the pipeline never started a training job"
    pid = stack.pid_of("training")
    assert pid is not None
    os.killpg(pid, signal.SIGKILL)
    time.sleep(1)
    stack.up(timeout=120)  # brings back only the training service

    result = airflow.wait_for_run(PIPELINE, run_id, timeout=300)
    assert result.state == "failed"
    after = httpx.get(f"{stack.cfg.training_url}/v1/jobs/{job['job_id']}", timeout=10).json()
    assert after["status"] == "failed" and after["error"], after
    # The failed task's log carries the job's error, so the reason is visible in Airflow.
    logs = "\n".join(result.failed_tasks.values())
    assert result.failed_tasks, "no task failed, yet the run failed"
    assert job["job_id"] in logs or after["error"][:40] in logs, logs

    # Clearing the failed run (as an operator does in the UI) must recover it: every task runs
    # again in the same run, which keeps its dataset snapshot and gets a new job.
    airflow.clear(PIPELINE, run_id)
    cleared = airflow.wait_for_run(PIPELINE, run_id, timeout=600)
    assert cleared.state == "success", cleared.failed_tasks
    retried = [j for j in jobs(stack) if j["job_id"] not in known]
    assert [j["status"] for j in retried] == ["failed", "succeeded"], retried
    assert retried[1]["dataset_id"] == job["dataset_id"], "the cleared run made a new snapshot"
