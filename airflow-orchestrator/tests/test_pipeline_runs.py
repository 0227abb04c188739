"""Behaviour: mlflow_orchestration_pipeline end to end against the stub services."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.notices import run_succeeded
from tests.stubs.world import TOKEN, World

DAG_ID = "mlflow_orchestration_pipeline"
TASKS = (
    "prepare_dataset",
    "check_training_ready",
    "submit_training_job",
    "wait_for_training_job",
    "fetch_model_version",
    "run_inference",
    "validate_pipeline",
)


def _unpause_model_management(dagbag: Any) -> None:
    """As an operator would: model_management on (only unpaused DAGs get queued by assets)."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import sync_bag_to_db
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session
    from sqlalchemy import update

    DagBundlesManager().sync_bundles_to_db()
    sync_bag_to_db(dagbag, "dags-folder", None)
    with create_session() as session:
        session.execute(
            update(DagModel).where(DagModel.dag_id == "model_management").values(is_paused=False)
        )


def _queued_asset_runs(dag_id: str) -> list[str]:
    """Asset names whose events wait to start a run of ``dag_id`` (the scheduler's queue)."""
    from airflow.models.asset import AssetDagRunQueue, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        query = (
            select(AssetModel.name)
            .join(AssetDagRunQueue, AssetDagRunQueue.asset_id == AssetModel.id)
            .where(AssetDagRunQueue.target_dag_id == dag_id)
        )
        return list(session.scalars(query))


def test_a_validated_run_updates_the_staging_model_asset_with_its_version(
    run_dag: Any, world: World, dagbag: Any, airflow_db: None
) -> None:
    _unpause_model_management(dagbag)

    result = run_dag(DAG_ID, {"epochs": 2, "holdout_samples": 20})

    assert result.state == "success", result.task_states
    summary = result.xcom("validate_pipeline")
    assert result.asset_events == [
        {
            "name": "image-classifier-staging",
            "uri": "models:/image-classifier@staging",
            "source_task_id": "validate_pipeline",
            "extra": {
                "model_name": "image-classifier",
                "version": "1",
                "alias": "staging",
                "dataset_id": summary["dataset_id"],
                "job_id": summary["job_id"],
                "holdout_accuracy": 1.0,
                "run_id": result.run_id,
            },
        }
    ]
    # The scheduler would now start model_management: the event is queued for it.
    assert _queued_asset_runs("model_management") == ["image-classifier-staging"]


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
    assert train_call["body"]["dataset_id"] == result.xcom("prepare_dataset")["dataset_id"]
    assert train_call["body"]["epochs"] == 3
    # Inference asked serving for exactly the new version, on the held-out split.
    [predict_call] = world.calls("serving", "POST", "/v1/predict")
    assert predict_call["body"]["version"] == "1"
    assert len(predict_call["body"]["instances"]) == 50
    [samples_call] = [r for r in world.requests if r["path"].endswith("/samples")]
    assert samples_call["query"] == {"split": "test", "limit": "50"}
    assert world.alerts == []
    assert world.notices == [run_succeeded(DAG_ID, result.run_id)]
    assert world.notice_request_ids == [f"{DAG_ID}/{result.run_id}"]
    # Every sender labels its calls with the run (run_dag checks all calls of every run too).
    request_id = f"{DAG_ID}/{result.run_id}"
    by_sender = {
        "HttpOperator": world.calls("training", "POST", "/v1/train"),
        "job trigger": [r for r in world.requests if r["path"].startswith("/v1/jobs/")],
        "call_service": world.calls("serving", "POST", "/v1/predict")
        + world.calls("training", "POST", "/v1/datasets")
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


def test_a_job_that_trains_longer_than_execution_timeout_is_waited_for_deferred(
    run_dag: Any, world: World, dagbag: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The job takes six polls (~3 s); execution_timeout would kill a worker-side wait at 2 s.
    world.polls_until_done = 6
    wait = dagbag.dags[DAG_ID].get_task("wait_for_training_job")
    monkeypatch.setattr(wait, "execution_timeout", timedelta(seconds=2))

    result = run_dag(DAG_ID, {"epochs": 2})

    assert result.state == "success", result.task_states
    assert result.tries["wait_for_training_job"] == 1
    job = result.xcom("wait_for_training_job")
    assert (job["status"], job["model_version"]) == ("succeeded", "1")
    polls = [r for r in world.requests if r["path"] == f"/v1/jobs/{job['job_id']}"]
    assert len(polls) == 6


@pytest.mark.parametrize("polls_until_done", [1, 4])
def test_failed_training_job_after_polls_fails_fast(
    run_dag: Any, world: World, polls_until_done: int
) -> None:
    world.job_outcome, world.polls_until_done = "fail", polls_until_done

    result = run_dag(DAG_ID)

    assert result.task_states["wait_for_training_job"] == "failed"
    assert result.tries["wait_for_training_job"] == 1
    assert len([r for r in world.requests if r["path"].startswith("/v1/jobs/")]) == polls_until_done
    assert world.notices == []  # no retry, no success
    [alert] = world.alerts
    assert alert["error"].endswith(f"failed: {world.job_error}")


def test_a_cleared_run_reuses_its_dataset_and_retrains_after_a_failed_job(
    run_dag: Any, world: World
) -> None:
    when = datetime(2026, 11, 27, 6, tzinfo=UTC)
    world.job_outcome = "fail"
    failed = run_dag(DAG_ID, {"epochs": 2}, logical_date=when)
    assert failed.task_states["wait_for_training_job"] == "failed"
    world.job_outcome = "succeed"  # e.g. the service's fault was fixed

    cleared = run_dag(DAG_ID, {"epochs": 2}, logical_date=when)

    assert cleared.run_id == failed.run_id
    assert cleared.state == "success", cleared.task_states
    # Both runs sent the run id as the key: one snapshot, two jobs (the failed one and a new one).
    snapshots = world.calls("training", "POST", "/v1/datasets")
    assert [c["headers"]["idempotency-key"] for c in snapshots] == [failed.run_id] * 2
    assert [c["status"] for c in snapshots] == [201, 200]  # the second one is a replay
    assert len(world.datasets) == 1
    first_job, second_job = world.jobs.values()
    assert (first_job.status, second_job.status) == ("failed", "succeeded")
    assert first_job.dataset_id == second_job.dataset_id == next(iter(world.datasets))
    assert cleared.xcom("wait_for_training_job")["job_id"] == second_job.job_id
    assert cleared.xcom("validate_pipeline")["model_version"] == "1"


def test_training_service_not_ready_fails_before_submitting_with_its_detail(
    run_dag: Any, world: World
) -> None:
    world.mlflow_down = "MLflow at http://mlflow:5000 is not reachable: connection refused"

    result = run_dag(DAG_ID)

    assert result.state == "failed"
    assert result.task_states["check_training_ready"] == "failed"
    assert result.tries["check_training_ready"] == 3  # the task defaults' 2 retries
    assert result.task_states["submit_training_job"] == "upstream_failed"
    assert world.calls("training", "POST", "/v1/train") == []
    assert [(n["kind"], n["task_id"], n["try_number"]) for n in world.notices] == [
        ("task_retry", "check_training_ready", 1),
        ("task_retry", "check_training_ready", 2),
    ]
    [alert] = world.alerts
    assert alert["task_id"] == "check_training_ready"
    assert alert["error"].endswith(f"HTTP 503: {world.mlflow_down}")


def test_inference_below_min_accuracy_fails_validation(run_dag: Any, world: World) -> None:
    world.version_quality["1"] = 0.5  # the first version registered by this run

    result = run_dag(DAG_ID, {"min_accuracy": 0.9, "holdout_samples": 20})

    assert result.state == "failed"
    assert result.task_states["run_inference"] == "success"
    assert result.task_states["validate_pipeline"] == "failed"
    assert result.asset_events == []  # a rejected version is no news for model_management
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
    run_dag: Any, world: World, stack: Any
) -> None:
    # Three in-task attempts fail, so the task itself fails once and is retried by Airflow;
    # the fourth 503 hits the retry, whose next attempt gets through.
    world.faults["POST /v1/train"] = 4

    result = run_dag(DAG_ID, {"epochs": 2})

    assert result.state == "success", result.task_states
    assert result.tries["submit_training_job"] == 2
    assert len(world.calls("training", "POST", "/v1/train")) == 5
    assert len(world.jobs) == 1
    assert world.alerts == []  # a retried task that recovers is not an alert...
    retry = {  # ...but its retry is a notice
        "source": "airflow-orchestrator",
        "severity": "warning",
        "kind": "task_retry",
        "dag_id": DAG_ID,
        "run_id": result.run_id,
        "task_id": "submit_training_job",
        "try_number": 1,
        "error": f"POST {stack.servers['training'].url}/v1/train -> HTTP 503: "
        "stub fault on POST /v1/train: restarting",
        "details": {"exception_type": "AirflowException", "max_tries": 2},
    }
    assert world.notices == [retry, run_succeeded(DAG_ID, result.run_id)]
    assert world.notice_request_ids == [f"{DAG_ID}/{result.run_id}"] * 2
