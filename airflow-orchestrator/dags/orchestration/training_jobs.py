"""Waiting for a training job of the training service (``GET /v1/jobs/{id}``), deferred.

``TrainingJobSensor`` hands the wait to the triggerer at once: ``TrainingJobTrigger`` polls the
``status_url`` that ``POST /v1/train`` answered with, every few seconds, so no worker slot is
held while a job trains. The wait is bounded by the job timeout (``job_timeout_minutes``,
default 60), not by the task's ``execution_timeout``: in Airflow 3.3 that one applies to each
``execute``/``execute_complete`` call, never to the time spent deferred.

A failed or cancelled job fails the task at once (no retries) with the job's own error; a
finished job is the task's return value (XCom), which the downstream tasks read.

The triggerer imports the trigger by its classpath, ``orchestration.training_jobs.
TrainingJobTrigger``: the DAGs folder must be on its ``PYTHONPATH`` (the image sets it).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import aiohttp
from airflow.providers.http.hooks.http import HttpAsyncHook
from airflow.sdk import BaseOperator, Context, XComArg
from airflow.sdk.exceptions import AirflowFailException
from airflow.triggers.base import BaseTrigger, TriggerEvent

from orchestration.service_http import (
    JSON_HEADERS,
    REQUEST_ID_HEADER,
    REQUEST_ID_TEMPLATE,
    REQUEST_TIMEOUT,
    RETRYABLE_STATUS,
    TRAINING_CONN_ID,
    detail_of,
)

log = logging.getLogger(__name__)

JOB_POLL_SECONDS = 3
DEFAULT_JOB_TIMEOUT_MINUTES = 60
# The trigger ends the wait itself at the deadline, with the job's state in the message; the
# deferral timeout (the scheduler's) is only the backstop for a trigger that never answers.
DEFERRAL_GRACE = timedelta(minutes=2)
FAILED_STATES = frozenset({"failed", "cancelled"})


def job_timeout(minutes: Any) -> timedelta:
    """The longest wait for one job: ``job_timeout_minutes`` (a DAG param, rendered per run)."""
    value = int(minutes)
    if value < 1:
        raise AirflowFailException(f"job_timeout_minutes must be >= 1, got {value}")
    return timedelta(minutes=value)


def poll_outcome(status_code: int, text: str) -> dict[str, Any] | None:
    """Judge one answer of ``GET /v1/jobs/{id}``: the trigger event's payload, None to wait.

    A 408/429/5xx means the service is restarting or busy; the job is not lost, so the trigger
    polls again. Any other 4xx (an unknown job) ends the wait with the service's detail.
    """
    if status_code in RETRYABLE_STATUS:
        log.warning("training service answered %s: %s", status_code, detail_of(text))
        return None
    if status_code >= 400:
        return {"status": "error", "message": f"HTTP {status_code}: {detail_of(text)}"}
    job: dict[str, Any] = json.loads(text)
    status = job.get("status")
    if status == "succeeded" or status in FAILED_STATES:
        return {"status": status, "job": job}
    progress = job.get("progress") or {}
    log.info(
        "job %s is %s (epoch %s/%s)",
        job.get("job_id"),
        status,
        progress.get("epoch"),
        progress.get("epochs"),
    )
    return None


class TrainingJobTrigger(BaseTrigger):
    """Polls a job's ``status_url`` until it finishes or ``deadline`` (epoch seconds) passes."""

    def __init__(
        self,
        status_url: str,
        deadline: float,
        *,
        conn_id: str = TRAINING_CONN_ID,
        poll_interval: float = JOB_POLL_SECONDS,
        request_id: str | None = None,
    ) -> None:
        super().__init__()
        self.status_url = status_url
        self.deadline = deadline
        self.conn_id = conn_id
        self.poll_interval = poll_interval
        self.request_id = request_id

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "status_url": self.status_url,
                "deadline": self.deadline,
                "conn_id": self.conn_id,
                "poll_interval": self.poll_interval,
                "request_id": self.request_id,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        while True:
            outcome = await self._poll()
            if outcome is not None:
                yield TriggerEvent(outcome)
                return
            if time.time() >= self.deadline:
                yield TriggerEvent({"status": "timeout", "message": "job timeout reached"})
                return
            await asyncio.sleep(self.poll_interval)

    async def _poll(self) -> dict[str, Any] | None:
        hook = HttpAsyncHook(method="GET", http_conn_id=self.conn_id, retry_limit=1)
        headers = {"Accept": JSON_HEADERS["Accept"]}
        if self.request_id:
            headers[REQUEST_ID_HEADER] = self.request_id
        connect, read = REQUEST_TIMEOUT
        try:
            async with hook.session() as http:
                response = await http.run(
                    endpoint=self.status_url,
                    headers=headers,
                    extra_options={
                        "check_response": False,
                        "timeout": aiohttp.ClientTimeout(connect=connect, sock_read=read),
                    },
                )
                text = await response.text()
        except (TimeoutError, aiohttp.ClientError) as exc:
            # Unreachable for now (restart, network blip): the deadline bounds the wait.
            log.warning("polling %s failed (%r); polling again", self.status_url, exc)
            return None
        return poll_outcome(response.status, text)


class TrainingJobSensor(BaseOperator):
    """Waits, deferred, for the job behind ``status_url`` (``/v1/jobs/{id}``); returns the job."""

    template_fields = ("status_url", "job_timeout_minutes", "request_id")
    ui_color = "#e6f1f2"

    def __init__(
        self,
        *,
        status_url: str | XComArg,
        job_timeout_minutes: Any = DEFAULT_JOB_TIMEOUT_MINUTES,
        conn_id: str = TRAINING_CONN_ID,
        poll_interval: float = JOB_POLL_SECONDS,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.status_url = status_url
        self.job_timeout_minutes = job_timeout_minutes
        self.conn_id = conn_id
        self.poll_interval = poll_interval
        self.request_id = REQUEST_ID_TEMPLATE

    def execute(self, context: Context) -> None:
        timeout = job_timeout(self.job_timeout_minutes)
        log.info("waiting up to %s for %s (deferred to the triggerer)", timeout, self.status_url)
        self.defer(
            trigger=TrainingJobTrigger(
                str(self.status_url),
                time.time() + timeout.total_seconds(),
                conn_id=self.conn_id,
                poll_interval=self.poll_interval,
                request_id=str(self.request_id),
            ),
            method_name="execute_complete",
            timeout=timeout + DEFERRAL_GRACE,
        )

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        """The trigger's verdict: the finished job, or a failure that no retry can fix."""
        status = event.get("status")
        job: dict[str, Any] = event.get("job") or {}
        if status == "succeeded":
            log.info("job %s succeeded: metrics=%s", job.get("job_id"), job.get("metrics"))
            return job
        if status in FAILED_STATES:
            message = (
                f"training job {job.get('job_id')} {status}: {job.get('error') or 'no error given'}"
            )
        elif status == "timeout":
            message = (
                f"training job at {self.status_url} still unfinished after "
                f"{job_timeout(self.job_timeout_minutes)}; raise job_timeout_minutes or cancel it"
            )
        else:
            message = f"GET {self.status_url} -> {event.get('message')}"
        log.error(message)
        raise AirflowFailException(message)


def training_job_sensor(
    task_id: str, status_url: XComArg, job_timeout_minutes: Any = DEFAULT_JOB_TIMEOUT_MINUTES
) -> TrainingJobSensor:
    """Deferred wait on a job, given the ``status_url`` of its ``POST /v1/train``."""
    return TrainingJobSensor(
        task_id=task_id, status_url=status_url, job_timeout_minutes=job_timeout_minutes
    )
