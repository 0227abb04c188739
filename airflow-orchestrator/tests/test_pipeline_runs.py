"""Behaviour: mlflow_orchestration_pipeline end to end against the stub services."""

from __future__ import annotations

from typing import Any

from tests.stubs.world import TOKEN, World

DAG_ID = "mlflow_orchestration_pipeline"
TASKS = (
    "create_dataset_snapshot",
    "submit_training_job",
    "wait_for_training_job",
    "fetch_holdout_samples",
    "fetch_model_version",
    "run_inference",
    "validate_pipeline",
)


def test_happy_path_trains_scores_and_validates_the_new_version(run_dag: Any, world: World) -> None:
    result = run_dag(DAG_ID, {"epochs": 3, "holdout_samples": 50})

    assert result.state == "success", result.task_states
    assert all(result.task_states[t] == "success" for t in TASKS), result.task_states
    summary = result.xcom("validate_pipeline")
    assert summary["model_version"] == "1"
    assert summary["holdout_accuracy"] == 1.0
    # One job, keyed by the run id, trained on the snapshot this run created, with the params.
    [train_call] = world.calls("training", "POST", "/v1/train")
    assert train_call["headers"]["idempotency-key"] == result.run_id
    assert train_call["headers"]["authorization"] == f"Bearer {TOKEN}"
    assert train_call["body"]["dataset_id"] == result.xcom("create_dataset_snapshot")["dataset_id"]
    assert train_call["body"]["epochs"] == 3
    # Inference asked serving for exactly the new version, on the held-out split.
    [predict_call] = world.calls("serving", "POST", "/v1/predict")
    assert predict_call["body"]["version"] == "1"
    assert len(predict_call["body"]["instances"]) == 50
    [samples_call] = [r for r in world.requests if r["path"].endswith("/samples")]
    assert samples_call["query"] == {"split": "test", "limit": "50"}
    assert world.alerts == []
    # Every sender labels its calls with the run (run_dag checks all calls of every run too).
    request_id = f"{DAG_ID}/{result.run_id}"
    by_sender = {
        "HttpOperator": world.calls("training", "POST", "/v1/train"),
        "HttpSensor": [r for r in world.requests if r["path"].startswith("/v1/jobs/")],
        "call_service": world.calls("serving", "POST", "/v1/predict")
        + [r for r in world.requests if r["service"] == "mlflow"],
    }
    for sender, calls in by_sender.items():
        assert calls, sender
        assert {c["headers"]["x-request-id"] for c in calls} == {request_id}, sender


def test_failed_training_job_fails_fast_with_the_job_error(run_dag: Any, world: World) -> None:
    world.job_outcome = "fail"

    result = run_dag(DAG_ID)

    assert result.state == "failed"
    assert result.task_states["wait_for_training_job"] == "failed"
    assert result.tries["wait_for_training_job"] == 1  # no retries on a failed job
    for downstream in ("fetch_model_version", "run_inference", "validate_pipeline"):
        assert result.task_states[downstream] == "upstream_failed"
    [alert] = world.alerts
    assert alert["task_id"] == "wait_for_training_job"
    assert world.job_error in alert["error"]


def test_inference_below_min_accuracy_fails_validation(run_dag: Any, world: World) -> None:
    world.version_quality["1"] = 0.5  # the first version registered by this run

    result = run_dag(DAG_ID, {"min_accuracy": 0.9, "holdout_samples": 20})

    assert result.state == "failed"
    assert result.task_states["run_inference"] == "success"
    assert result.task_states["validate_pipeline"] == "failed"
    [alert] = world.alerts
    assert "accuracy 0.5000 < min_accuracy 0.9" in alert["error"]
    assert alert["kind"] == "quality_gate_failed"
    assert alert["details"] == {
        "version": "1",
        "accuracy": 0.5,
        "min_accuracy": 0.9,
        "n_samples": 20,
    }


def test_training_service_5xx_then_recovery_is_retried_without_a_second_job(
    run_dag: Any, world: World
) -> None:
    # Three in-task attempts fail, so the task itself fails once and is retried by Airflow;
    # the fourth 503 hits the retry, whose next attempt gets through.
    world.faults["POST /v1/train"] = 4

    result = run_dag(DAG_ID, {"epochs": 2})

    assert result.state == "success", result.task_states
    assert result.tries["submit_training_job"] == 2
    assert len(world.calls("training", "POST", "/v1/train")) == 5
    assert len(world.jobs) == 1
    assert world.alerts == []  # a retried task that recovers is not an alert
