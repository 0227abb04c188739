"""Waiting for a training job of the training service (``GET /v1/jobs/{id}``).

The sensor polls the ``status_url`` that ``POST /v1/train`` answered with, every few seconds so a
ten-second training does not wait a minute, and fails at once (no retries) when the job failed,
with the job's own error in the message and the log.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from airflow.providers.http.sensors.http import HttpSensor
from airflow.sdk import PokeReturnValue, XComArg
from airflow.sdk.exceptions import AirflowFailException
from requests import Response

from orchestration.service_http import (
    HTTP_EXTRA_OPTIONS,
    JSON_HEADERS,
    REQUEST_ID_HEADER,
    REQUEST_ID_TEMPLATE,
    RETRYABLE_STATUS,
    TRAINING_CONN_ID,
    check_service_response,
    error_detail,
)

log = logging.getLogger(__name__)

JOB_POLL_SECONDS = 3
JOB_TIMEOUT = timedelta(hours=1)
FAILED_STATES = frozenset({"failed", "cancelled"})


def job_finished(response: Response) -> bool | PokeReturnValue:
    """HttpSensor check: done (job pushed to XCom) on success, raise on failure, else wait."""
    if response.status_code in RETRYABLE_STATUS:
        # The service is restarting or busy: the job is not lost, poll again later.
        log.warning(
            "training service answered %s: %s", response.status_code, error_detail(response)
        )
        return False
    check_service_response(response)  # 404 unknown job and other 4xx fail the task
    job: dict[str, Any] = response.json()
    status = job.get("status")
    if status == "succeeded":
        log.info("job %s succeeded: metrics=%s", job.get("job_id"), job.get("metrics"))
        return PokeReturnValue(is_done=True, xcom_value=job)
    if status in FAILED_STATES:
        message = (
            f"training job {job.get('job_id')} {status}: {job.get('error') or 'no error given'}"
        )
        log.error(message)
        raise AirflowFailException(message)
    progress = job.get("progress") or {}
    log.info(
        "job %s is %s (epoch %s/%s)",
        job.get("job_id"),
        status,
        progress.get("epoch"),
        progress.get("epochs"),
    )
    return False


def training_job_sensor(task_id: str, status_url: XComArg) -> HttpSensor:
    """Sensor on a job, given the ``status_url`` (``/v1/jobs/{id}``) of its ``POST /v1/train``."""
    return HttpSensor(
        task_id=task_id,
        http_conn_id=TRAINING_CONN_ID,
        endpoint=status_url,  # type: ignore[arg-type]  # a template field: the path, per run
        headers={"Accept": JSON_HEADERS["Accept"], REQUEST_ID_HEADER: REQUEST_ID_TEMPLATE},
        extra_options=HTTP_EXTRA_OPTIONS,
        response_check=job_finished,
        # Poke, not reschedule: on a busy 2-core host Airflow 3.3's scheduler can see a
        # rescheduled sensor's process exit before its state is committed ("finished with
        # state success, but the task instance's state attribute is running") and fail the
        # try. A training job takes seconds to minutes, so holding one slot is the cheap side.
        mode="poke",
        poke_interval=JOB_POLL_SECONDS,
        timeout=JOB_TIMEOUT.total_seconds(),
    )
