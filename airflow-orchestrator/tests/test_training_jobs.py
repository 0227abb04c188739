"""The deferred wait on a training job: its limit, its trigger, and how it judges the job."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from datetime import timedelta
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowFailException, TaskDeferred
from orchestration.task_defaults import default_task_args
from orchestration.training_jobs import (
    DEFERRAL_GRACE,
    TrainingJobSensor,
    TrainingJobTrigger,
    poll_outcome,
)

from tests.conftest import DAGS_FOLDER
from tests.consumer_expectations import exchange_violations
from tests.stubs.world import Job, World

PIPELINE = "mlflow_orchestration_pipeline"


def _rendered_sensor(minutes: int) -> TrainingJobSensor:
    sensor = TrainingJobSensor(
        task_id="wait", status_url="/v1/jobs/abc", job_timeout_minutes=minutes
    )
    sensor.request_id = "dag/run"  # what rendering the template gives
    return sensor


@pytest.mark.parametrize("minutes", [60, 180])
def test_the_wait_is_limited_by_the_job_timeout_not_the_execution_timeout(minutes: int) -> None:
    sensor = _rendered_sensor(minutes)
    started = time.time()

    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute({})

    # The task gives its slot back at once; the trigger ends the wait at the job timeout and
    # the scheduler's deferral timeout is only a backstop just after it.
    trigger = deferred.value.trigger
    assert isinstance(trigger, TrainingJobTrigger)
    assert trigger.deadline == pytest.approx(started + minutes * 60, abs=5)
    assert deferred.value.timeout == timedelta(minutes=minutes) + DEFERRAL_GRACE
    assert trigger.request_id == "dag/run"
    # execution_timeout bounds execute() and execute_complete() only, never the deferral.
    assert default_task_args()["execution_timeout"] < timedelta(minutes=minutes)


def test_the_pipeline_wait_is_deferred_with_the_job_timeout_param(dagbag: Any) -> None:
    task = dagbag.dags[PIPELINE].get_task("wait_for_training_job")
    assert isinstance(task, TrainingJobSensor)
    assert dagbag.dags[PIPELINE].params["job_timeout_minutes"] == 60
    assert "job_timeout_minutes" in task.template_fields


def test_trigger_round_trips_and_is_importable_from_the_dags_folder() -> None:
    trigger = TrainingJobTrigger("/v1/jobs/abc", 123.0, poll_interval=2, request_id="d/r")
    classpath, kwargs = trigger.serialize()
    assert classpath == "orchestration.training_jobs.TrainingJobTrigger"
    assert TrainingJobTrigger(**kwargs).serialize() == (classpath, kwargs)
    # What the triggerer does with the classpath, in a fresh interpreter: only PYTHONPATH=dags.
    module, name = classpath.rsplit(".", 1)
    subprocess.run(
        [sys.executable, "-c", f"from {module} import {name}"],
        check=True,
        cwd="/",
        env={"PYTHONPATH": str(DAGS_FOLDER), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"},
        timeout=120,
    )


def test_poll_outcome_waits_on_running_and_transient_answers() -> None:
    assert poll_outcome(200, '{"job_id": "j", "status": "running", "progress": {}}') is None
    assert poll_outcome(503, '{"detail": "restarting"}') is None
    assert poll_outcome(404, '{"detail": "job \'x\' not found"}') == {
        "status": "error",
        "message": "HTTP 404: job 'x' not found",
    }
    done = poll_outcome(200, '{"job_id": "j", "status": "failed", "error": "NaN"}')
    assert done == {"status": "failed", "job": {"job_id": "j", "status": "failed", "error": "NaN"}}


def test_execute_complete_returns_the_job_or_fails_without_retry() -> None:
    sensor = _rendered_sensor(60)
    job = {"job_id": "j", "status": "succeeded", "model_version": "3"}
    assert sensor.execute_complete({}, {"status": "succeeded", "job": job}) == job
    with pytest.raises(AirflowFailException, match="training job j failed: loss NaN"):
        sensor.execute_complete(
            {},
            {"status": "failed", "job": {"job_id": "j", "error": "loss NaN"}},
        )
    with pytest.raises(AirflowFailException, match="unfinished after 1:00:00"):
        sensor.execute_complete({}, {"status": "timeout"})


def test_trigger_ends_the_wait_at_the_deadline(world: World) -> None:
    world.polls_until_done = 1000  # a job that never finishes
    body = {"epochs": 3, "batch_size": 1, "learning_rate": 0.1, "seed": 1, "register": True}
    job = Job("slowjob", "d1", body)
    world.jobs[job.job_id] = job
    trigger = TrainingJobTrigger(
        f"/v1/jobs/{job.job_id}", time.time() + 1.5, poll_interval=0.2, request_id="d/r"
    )

    async def first_event() -> Any:
        return await anext(trigger.run())

    event = asyncio.run(first_event())

    assert event.payload == {"status": "timeout", "message": "job timeout reached"}
    polls = world.calls("training", "GET", f"/v1/jobs/{job.job_id}")
    assert len(polls) >= 3
    assert {p["headers"]["x-request-id"] for p in polls} == {"d/r"}
    # The stub answers are the provider's (later runs check every recorded exchange).
    assert exchange_violations(polls) == []
