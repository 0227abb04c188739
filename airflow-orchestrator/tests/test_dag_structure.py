"""Structure: task ids, dependencies, schedules, params and HTTP settings of each DAG."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from airflow.providers.http.operators.http import HttpOperator
from airflow.providers.http.sensors.http import HttpSensor
from airflow.sdk import Asset, AssetAll, AssetOrTimeSchedule, CronTriggerTimetable
from airflow.sdk.definitions.callback import SyncCallback
from airflow.sdk.definitions.deadline import DeadlineReference
from orchestration.alerts import (
    PipelineAlertNotifier,
    RunSucceededNotifier,
    TaskRetryNotifier,
    notify_deadline_missed,
)
from orchestration.assets import MODEL_NAME, STAGING_ALIAS, STAGING_MODEL
from orchestration.service_http import (
    HTTP_RETRY_ARGS,
    REQUEST_ID_TEMPLATE,
    check_service_response,
)
from orchestration.task_defaults import TRAINING_POOL
from orchestration.training_jobs import TrainingJobSensor

# task id -> ids of its direct upstream tasks
EXPECTED_GRAPHS: dict[str, dict[str, set[str]]] = {
    "hello_world": {
        "say_hello": set(),
        "echo_greeting": {"say_hello"},
        "count_letters": {"say_hello"},
    },
    "mlflow_orchestration_pipeline": {
        "prepare_dataset": set(),
        "check_training_ready": set(),
        "submit_training_job": {"prepare_dataset", "check_training_ready"},
        "wait_for_training_job": {"submit_training_job"},
        "fetch_model_version": {"wait_for_training_job"},
        "run_inference": {"fetch_model_version", "prepare_dataset"},
        "validate_pipeline": {
            "prepare_dataset",
            "wait_for_training_job",
            "fetch_model_version",
            "run_inference",
        },
    },
    "model_management": {
        "list_model_versions": set(),
        "score_on_staging_holdout": {"list_model_versions"},
        "validate_staging_version": {"score_on_staging_holdout"},
        "promote_to_production": {"validate_staging_version"},
        "reload_serving_model": {"promote_to_production"},
        "cleanup_old_versions": {"list_model_versions", "reload_serving_model"},
        "monitor_serving_service": {"cleanup_old_versions"},
        "fail_run_if_a_check_failed": {
            "list_model_versions",
            "score_on_staging_holdout",
            "validate_staging_version",
            "promote_to_production",
            "reload_serving_model",
            "cleanup_old_versions",
            "monitor_serving_service",
        },
    },
    "simple_image_classifier": {
        "start_training": set(),
        "wait_for_training": {"start_training"},
        "predict_sample_images": {"wait_for_training"},
    },
}

EXPECTED_SCHEDULES = {
    "hello_world": None,
    "mlflow_orchestration_pipeline": "0 */6 * * *",
    # Daily at midnight UTC, or as soon as the pipeline updates the staging model asset.
    "model_management": AssetOrTimeSchedule(
        timetable=CronTriggerTimetable("0 0 * * *", timezone="UTC"), assets=[STAGING_MODEL]
    ),
    "simple_image_classifier": None,
}

EXPECTED_PARAM_DEFAULTS: dict[str, dict[str, Any]] = {
    "hello_world": {"name": "world"},
    "mlflow_orchestration_pipeline": {
        "dataset_source": "digits",
        "test_fraction": 0.2,
        "epochs": 10,
        "holdout_samples": 200,
        "min_accuracy": 0.8,
        "job_timeout_minutes": 60,
    },
    "model_management": {
        "model_name": "image-classifier",
        "staging_alias": "staging",
        "production_alias": "production",
        "min_accuracy": 0.8,
        "max_regression": 0.02,
        "holdout_samples": 200,
        "retention_days": 30,
        "max_error_rate": 0.05,
        "max_p99_latency_seconds": 2.5,
        "min_requests": 100,
        "min_live_accuracy": 0.8,
        "min_feedback": 20,
        "max_input_drift": 0.5,
        "min_drift_inputs": 50,
    },
    "simple_image_classifier": {"epochs": 5, "n_images": 3},
}


@pytest.mark.parametrize("dag_id", sorted(EXPECTED_GRAPHS))
def test_task_ids_and_dependencies(dagbag: Any, dag_id: str) -> None:
    dag = dagbag.dags[dag_id]
    graph = {task.task_id: set(task.upstream_task_ids) for task in dag.tasks}
    assert graph == EXPECTED_GRAPHS[dag_id]


@pytest.mark.parametrize("dag_id", sorted(EXPECTED_SCHEDULES))
def test_schedule_catchup_and_param_defaults(dagbag: Any, dag_id: str) -> None:
    dag = dagbag.dags[dag_id]
    assert dag.schedule == EXPECTED_SCHEDULES[dag_id]
    assert dag.catchup is False
    defaults = {name: dag.params[name] for name in EXPECTED_PARAM_DEFAULTS[dag_id]}
    assert defaults == EXPECTED_PARAM_DEFAULTS[dag_id]


def test_pipeline_runs_one_at_a_time_without_backfilling_on_unpause(dagbag: Any) -> None:
    dag = dagbag.dags["mlflow_orchestration_pipeline"]
    assert dag.max_active_runs == 1
    # No start_date: unpausing waits for the next 6-hour tick instead of starting a run at once.
    assert dag.start_date is None


def test_training_is_submitted_with_the_run_id_as_idempotency_key(dagbag: Any) -> None:
    for dag_id, task_id in [
        ("mlflow_orchestration_pipeline", "submit_training_job"),
        ("simple_image_classifier", "start_training"),
    ]:
        task = dagbag.dags[dag_id].get_task(task_id)
        assert isinstance(task, HttpOperator)
        assert (task.method, task.endpoint) == ("POST", "/v1/train")
        assert task.headers["Idempotency-Key"] == "{{ run_id }}"


def test_every_training_submission_runs_in_the_training_pool(dagbag: Any) -> None:
    """Only the tasks that POST /v1/train take a slot of the pool `training`."""
    submitting = {
        (dag_id, task.task_id)
        for dag_id, dag in dagbag.dags.items()
        for task in dag.tasks
        if isinstance(task, HttpOperator) and task.endpoint == "/v1/train"
    }
    assert submitting == {
        ("mlflow_orchestration_pipeline", "submit_training_job"),
        ("simple_image_classifier", "start_training"),
    }
    for dag_id, dag in dagbag.dags.items():
        for task in dag.tasks:
            expected = TRAINING_POOL if (dag_id, task.task_id) in submitting else "default_pool"
            assert task.pool == expected, (dag_id, task.task_id, task.pool)
    assert TRAINING_POOL == "training"  # the name airflow-init and the embedded stack create


@pytest.mark.parametrize("dag_id", sorted(EXPECTED_GRAPHS))
def test_http_tasks_have_timeouts_backoff_and_a_detail_raising_check(
    dagbag: Any, dag_id: str
) -> None:
    for task in dagbag.dags[dag_id].tasks:
        assert task.retry_exponential_backoff or task.retries <= 1 or dag_id == "hello_world"
        if isinstance(task, (HttpOperator, HttpSensor)):
            assert task.headers["X-Request-ID"] == REQUEST_ID_TEMPLATE
        if isinstance(task, HttpOperator):
            assert task.retry_args is HTTP_RETRY_ARGS
            assert task.response_check is check_service_response
            assert task.extra_options["timeout"]
        if isinstance(task, TrainingJobSensor):
            assert task.request_id == REQUEST_ID_TEMPLATE
            assert task.poll_interval <= 5, "a ten-second training must not wait a minute"


@pytest.mark.parametrize("dag_id", ["mlflow_orchestration_pipeline", "model_management"])
def test_failures_alert_through_the_notifier(dagbag: Any, dag_id: str) -> None:
    for task in dagbag.dags[dag_id].tasks:
        callbacks = task.on_failure_callback or []
        if task.task_id == "fail_run_if_a_check_failed":
            assert not callbacks  # the failed check already alerted
        else:
            assert any(isinstance(cb, PipelineAlertNotifier) for cb in callbacks), task.task_id


@pytest.mark.parametrize("dag_id", ["mlflow_orchestration_pipeline", "model_management"])
def test_retries_and_successful_runs_notify_the_webhook(dagbag: Any, dag_id: str) -> None:
    dag = dagbag.dags[dag_id]
    assert [type(cb) for cb in dag.on_success_callback] == [RunSucceededNotifier]
    for task in dag.tasks:
        if task.retries:
            callbacks = task.on_retry_callback or []
            assert [type(cb) for cb in callbacks] == [TaskRetryNotifier], task.task_id


def test_the_staging_model_asset_is_the_registered_models_mlflow_uri() -> None:
    expected = Asset(
        name="image-classifier-staging", uri="models:/image-classifier@staging", group="model"
    )
    assert expected == STAGING_MODEL


def test_the_asset_names_the_model_and_alias_model_management_promotes_from(dagbag: Any) -> None:
    params = dagbag.dags["model_management"].params
    assert (params["model_name"], params["staging_alias"]) == (MODEL_NAME, STAGING_ALIAS)


def test_only_a_validated_pipeline_run_updates_the_staging_model_asset(dagbag: Any) -> None:
    outlets = {t.task_id: t.outlets for t in dagbag.dags["mlflow_orchestration_pipeline"].tasks}
    assert outlets.pop("validate_pipeline") == [STAGING_MODEL]
    assert not any(outlets.values())


def test_model_management_runs_daily_and_on_the_staging_asset(dagbag: Any) -> None:
    schedule = dagbag.dags["model_management"].schedule
    assert isinstance(schedule, AssetOrTimeSchedule)
    assert schedule.asset_condition == AssetAll(STAGING_MODEL)
    assert schedule.timetable == CronTriggerTimetable("@daily", timezone="UTC")


def test_pipeline_runs_have_a_deadline_from_their_logical_date(dagbag: Any) -> None:
    [deadline] = dagbag.dags["mlflow_orchestration_pipeline"].deadline
    # Not DAGRUN_QUEUED_AT: Airflow 3.3.2 fails to clear runs of a DAG with such a deadline.
    assert deadline.reference == DeadlineReference.DAGRUN_LOGICAL_DATE
    assert deadline.interval == timedelta(minutes=30)  # PIPELINE_DEADLINE_MINUTES unset
    callback = SyncCallback(notify_deadline_missed, kwargs={"deadline_minutes": 30})
    assert deadline.callback == callback


@pytest.mark.parametrize(
    "dag_id", ["mlflow_orchestration_pipeline", "model_management", "simple_image_classifier"]
)
def test_outputs_flow_as_xcomargs_not_jinja_pulls(dagbag: Any, dag_id: str) -> None:
    for task in dagbag.dags[dag_id].tasks:
        for field in task.template_fields:
            assert "xcom_pull" not in repr(getattr(task, field)), (task.task_id, field)


@pytest.mark.parametrize("dag_id", sorted(EXPECTED_PARAM_DEFAULTS))
def test_every_param_has_a_schema(dagbag: Any, dag_id: str) -> None:
    params = dagbag.dags[dag_id].params
    for name in params:
        assert params.get_param(name).schema.get("type"), f"{dag_id}.{name} is not validated"
