"""The pipeline's run deadline: its interval setting, and the alert its callback posts.

A missed deadline is found by the scheduler, which ``dag.test()`` does not run, so the callback
is called here the way the executor calls it (``execute_callback`` with the import path the DAG
serializes), with the context the scheduler builds (``Deadline.handle_miss``), against the real
webhook stub.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from orchestration.run_deadline import DEADLINE_ENV, deadline_minutes, run_deadline

from tests.conftest import DAGS_FOLDER
from tests.stubs.world import World

QUEUED_AT = datetime(2026, 11, 30, 6, 0, 5, tzinfo=UTC)
RUN_ID = "scheduled__2026-11-30T06:00:00+00:00"


def test_deadline_minutes_come_from_the_environment_or_default_to_30() -> None:
    assert deadline_minutes({}) == 30
    assert deadline_minutes({DEADLINE_ENV: " 45 "}) == 45
    for bad in ("0", "-5", "1.5", "half an hour"):
        with pytest.raises(ValueError, match=f"{DEADLINE_ENV} must be a whole number"):
            deadline_minutes({DEADLINE_ENV: bad})


def test_the_callback_path_imports_where_the_executor_runs_it_and_the_interval_is_parsed() -> None:
    # As the dag-processor parses and the executor imports: a fresh interpreter, PYTHONPATH=dags.
    code = (
        "from orchestration.run_deadline import run_deadline; d = run_deadline();"
        "from airflow.sdk._shared.module_loading import import_string;"
        "assert callable(import_string(d.callback.path));"
        "print(d.interval.total_seconds(), d.callback.path, d.callback.kwargs)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        check=True,
        cwd="/",
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(DAGS_FOLDER), DEADLINE_ENV: "45"},
        timeout=120,
    ).stdout.split("\n")[-2]
    assert out == "2700.0 orchestration.alerts.notify_deadline_missed {'deadline_minutes': 45}"


def _scheduler_context(
    deadline_time: datetime, state: str = "running", end_date: datetime | None = None
) -> dict[str, Any]:
    """What ``Deadline.handle_miss`` passes as ``context``: the REST model of the run, as JSON."""
    from airflow.api_fastapi.core_api.datamodels.dag_run import DAGRunResponse

    dag_run = DAGRunResponse.model_validate(
        {
            "run_id": RUN_ID,
            "dag_id": "mlflow_orchestration_pipeline",
            "logical_date": QUEUED_AT,
            "queued_at": QUEUED_AT,
            "start_date": QUEUED_AT,
            "end_date": end_date,
            "duration": None,
            "data_interval_start": QUEUED_AT,
            "data_interval_end": QUEUED_AT,
            "run_after": QUEUED_AT,
            "last_scheduling_decision": None,
            "run_type": "scheduled",
            "state": state,
            "triggered_by": None,
            "triggering_user_name": None,
            "conf": {},
            "note": None,
            "dag_versions": [],
            "bundle_version": None,
            "dag_model": {"dag_display_name": "mlflow_orchestration_pipeline"},
            "partition_key": None,
            "partition_date": None,
        }
    )
    return {
        "dag_run": dag_run.model_dump(mode="json"),
        "deadline": {"id": "0193d0c8-0000-7000-8000-000000000001", "deadline_time": deadline_time},
    }


def test_a_missed_deadline_posts_deadline_missed_to_the_webhook(stack: Any, world: World) -> None:
    from airflow.sdk.execution_time.callback_supervisor import execute_callback
    from structlog import get_logger

    deadline = run_deadline(30)
    deadline_time = QUEUED_AT + timedelta(minutes=30)
    kwargs = {**deadline.callback.kwargs, "context": _scheduler_context(deadline_time)}

    ok, error = execute_callback(deadline.callback.path, kwargs, Path(), None, get_logger())

    assert (ok, error) == (True, None)
    assert world.notices == [
        {
            "source": "airflow-orchestrator",
            "severity": "warning",
            "dag_id": "mlflow_orchestration_pipeline",
            "run_id": RUN_ID,
            "task_id": None,
            "try_number": None,
            "kind": "deadline_missed",
            "error": f"run {RUN_ID} not finished 30 min after its logical date (state: running)",
            "details": {
                "deadline_minutes": 30,
                "deadline_time": "2026-11-30T06:30:05+00:00",
                "logical_date": "2026-11-30T06:00:05Z",
                "queued_at": "2026-11-30T06:00:05Z",
                "state": "running",
            },
        }
    ]
    assert world.notice_request_ids == [f"mlflow_orchestration_pipeline/{RUN_ID}"]
    assert world.alerts == []


def test_a_run_that_failed_before_its_deadline_posts_no_deadline_alert(
    stack: Any, world: World
) -> None:
    # Airflow 3.3 prunes a run's deadline only when the run succeeds; a failed one keeps it.
    from orchestration.alerts import notify_deadline_missed

    deadline_time = QUEUED_AT + timedelta(minutes=30)
    ended = QUEUED_AT + timedelta(minutes=4)

    notify_deadline_missed(_scheduler_context(deadline_time, "failed", ended), deadline_minutes=30)

    assert world.notices == []
