"""Alerting: notifiers that log a run's events and post them as JSON to one webhook.

The webhook is optional: it is used only when the ``alert_webhook`` connection exists, e.g.
``AIRFLOW_CONN_ALERT_WEBHOOK='{"conn_type": "http", "host": "https://hooks.example.com/T0/B0"}'``
(a full URL in ``host`` is posted to as is). A broken webhook never hides the original event.

Every payload has the same fields; ``kind`` and ``severity`` tell them apart:

* ``PipelineAlertNotifier`` (``on_failure_callback``, severity ``error``): a task that raised
  ``CheckFailed`` sends one payload per finding (``findings.py``); any other failure is
  ``task_failed``.
* ``TaskRetryNotifier`` (``on_retry_callback``, ``warning``): ``task_retry``.
* ``RunSucceededNotifier`` (the DAG's ``on_success_callback``, ``info``): ``run_succeeded``.
* ``notify_deadline_missed`` (a ``DeadlineAlert`` callback, ``warning``): ``deadline_missed``,
  from the context the scheduler hands a deadline callback (``run_deadline.py``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from airflow.providers.http.hooks.http import HttpHook
from airflow.sdk import BaseHook, BaseNotifier

from orchestration.findings import (
    DEADLINE_MISSED,
    RUN_SUCCEEDED,
    TASK_FAILED,
    TASK_RETRY,
    CheckFailed,
)
from orchestration.service_http import (
    ALERT_WEBHOOK_CONN_ID,
    HTTP_EXTRA_OPTIONS,
    HTTP_RETRY_ARGS,
    JSON_HEADERS,
    REQUEST_ID_HEADER,
    check_service_response,
    request_id,
)

log = logging.getLogger(__name__)

SOURCE = "airflow-orchestrator"
LOG_LEVELS = {"error": logging.ERROR, "warning": logging.WARNING, "info": logging.INFO}


def _webhook_configured(conn_id: str) -> bool:
    try:
        BaseHook.get_connection(conn_id)
    except Exception:  # AirflowNotFoundException, or no secrets backend reachable at all
        return False
    return True


def _base(context: Any, severity: str, *, with_task: bool = True) -> dict[str, Any]:
    """The fields every payload has, from a task's or a DAG run's callback context."""
    ti = (context.get("ti") or context.get("task_instance")) if with_task else None
    dag_run, dag = context.get("dag_run"), context.get("dag")
    return {
        "source": SOURCE,
        "severity": severity,
        "dag_id": getattr(ti, "dag_id", None)
        or getattr(dag_run, "dag_id", None)
        or getattr(dag, "dag_id", None),
        "run_id": getattr(ti, "run_id", None)
        or getattr(dag_run, "run_id", None)
        or context.get("run_id"),
        "task_id": getattr(ti, "task_id", None),
        "try_number": getattr(ti, "try_number", None),
    }


def build_alerts(context: Any) -> list[dict[str, Any]]:
    """The failure alerts' JSON bodies from a callback context: one per finding, at least one."""
    exception = context.get("exception")
    base = {
        **_base(context, "error"),
        "error": str(exception) if exception is not None else context.get("reason"),
    }
    if isinstance(exception, CheckFailed):
        return [
            {**base, "kind": finding.kind, "details": finding.details}
            for finding in exception.findings
        ]
    details = {"exception_type": type(exception).__name__} if exception is not None else {}
    return [{**base, "kind": TASK_FAILED, "details": details}]


def build_retry_notice(context: Any) -> dict[str, Any]:
    """A task attempt failed and Airflow will try again: which try, why, how many are allowed."""
    exception = context.get("exception")
    ti = context.get("ti") or context.get("task_instance")
    return {
        **_base(context, "warning"),
        "kind": TASK_RETRY,
        "error": str(exception) if exception is not None else None,
        "details": {
            "exception_type": type(exception).__name__ if exception is not None else None,
            "max_tries": getattr(ti, "max_tries", None),
        },
    }


def build_success_notice(context: Any) -> dict[str, Any]:
    """The DAG run succeeded (a DAG-level event: no task or try)."""
    run_type = getattr(context.get("dag_run"), "run_type", None)
    return {
        **_base(context, "info", with_task=False),
        "kind": RUN_SUCCEEDED,
        "error": None,
        "details": {"run_type": getattr(run_type, "value", run_type)},
    }


def _iso(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


def build_deadline_notice(context: Mapping[str, Any], deadline_minutes: int) -> dict[str, Any]:
    """A run still going at its deadline, from the scheduler's deadline context.

    That context is plain JSON, not a task context: ``dag_run`` is the REST API's DAG run
    (``dag_id``, ``dag_run_id``, ``state``, ``queued_at``...) and ``deadline`` has ``id`` and
    ``deadline_time``.
    """
    dag_run = context.get("dag_run") or {}
    deadline_time = _iso((context.get("deadline") or {}).get("deadline_time"))
    run_id, state = dag_run.get("dag_run_id"), dag_run.get("state")
    return {
        "source": SOURCE,
        "severity": "warning",
        "dag_id": dag_run.get("dag_id"),
        "run_id": run_id,
        "task_id": None,
        "try_number": None,
        "kind": DEADLINE_MISSED,
        "error": f"run {run_id} not finished {deadline_minutes} min after its logical date "
        f"(state: {state})",
        "details": {
            "deadline_minutes": deadline_minutes,
            "deadline_time": deadline_time,
            "logical_date": _iso(dag_run.get("logical_date")),
            "queued_at": _iso(dag_run.get("queued_at")),
            "state": state,
        },
    }


def deliver(payloads: list[dict[str, Any]], webhook_conn_id: str = ALERT_WEBHOOK_CONN_ID) -> None:
    """Log each payload at its severity's level and POST it when the webhook exists."""
    for payload in payloads:
        log.log(
            LOG_LEVELS.get(payload["severity"], logging.ERROR),
            "ALERT %s %s.%s %s: %s details=%s",
            payload["kind"],
            payload["dag_id"],
            payload["task_id"] or "<run>",
            "failed" if payload["severity"] == "error" else payload["severity"],
            payload["error"],
            payload["details"],
        )
    if not _webhook_configured(webhook_conn_id):
        log.info("no '%s' connection: alert logged only", webhook_conn_id)
        return
    for payload in payloads:
        _post(payload, webhook_conn_id)


def _post(payload: dict[str, Any], webhook_conn_id: str) -> None:
    headers = dict(JSON_HEADERS)
    if payload["dag_id"] and payload["run_id"]:
        headers[REQUEST_ID_HEADER] = request_id(payload["dag_id"], payload["run_id"])
    try:
        hook = HttpHook(method="POST", http_conn_id=webhook_conn_id)
        response = hook.run_with_advanced_retry(
            HTTP_RETRY_ARGS, None, None, headers, HTTP_EXTRA_OPTIONS, json=payload
        )
        check_service_response(response)
    except Exception:
        log.exception("could not post the %s alert to '%s'", payload["kind"], webhook_conn_id)


class WebhookNotifier(BaseNotifier):
    """Log the payloads a callback context makes and post them to ``webhook_conn_id``."""

    def __init__(self, webhook_conn_id: str = ALERT_WEBHOOK_CONN_ID) -> None:
        super().__init__()
        self.webhook_conn_id = webhook_conn_id

    def payloads(self, context: Any) -> list[dict[str, Any]]:
        raise NotImplementedError

    def render_template_fields(self, context: Any, jinja_env: Any = None) -> None:
        # Nothing is templated here. Skipping the render also spares a DAG-level callback
        # under dag.test(), whose context holds a SerializedDAG that cannot build a Jinja env.
        return None

    def notify(self, context: Any) -> None:
        deliver(self.payloads(context), self.webhook_conn_id)


class PipelineAlertNotifier(WebhookNotifier):
    """``on_failure_callback``: the task failed for good (severity ``error``)."""

    def payloads(self, context: Any) -> list[dict[str, Any]]:
        return build_alerts(context)


class TaskRetryNotifier(WebhookNotifier):
    """``on_retry_callback``: a failed try that Airflow retries (``task_retry``, ``warning``)."""

    def payloads(self, context: Any) -> list[dict[str, Any]]:
        return [build_retry_notice(context)]


class RunSucceededNotifier(WebhookNotifier):
    """The DAG's ``on_success_callback``: the run succeeded (``run_succeeded``, ``info``)."""

    def payloads(self, context: Any) -> list[dict[str, Any]]:
        return [build_success_notice(context)]


def task_alert_callbacks() -> dict[str, Any]:
    """The task-level callbacks of the pipeline DAGs' ``default_args``: failure and retry."""
    return {
        "on_failure_callback": [PipelineAlertNotifier()],
        "on_retry_callback": [TaskRetryNotifier()],
    }


def _as_datetime(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))


def ended_before_deadline(context: Mapping[str, Any]) -> bool:
    """The run ended before its deadline: Airflow 3.3 prunes a deadline only after a success,
    so a run that failed early still reaches the callback, and has alerted already."""
    end = _as_datetime((context.get("dag_run") or {}).get("end_date"))
    deadline = _as_datetime((context.get("deadline") or {}).get("deadline_time"))
    return end is not None and deadline is not None and end <= deadline


def notify_deadline_missed(context: Mapping[str, Any], deadline_minutes: int) -> None:
    """Deadline callback (``SyncCallback`` path): post ``deadline_missed`` (``warning``)."""
    notice = build_deadline_notice(context, deadline_minutes)
    if ended_before_deadline(context):
        log.info("%s ended before its deadline: no %s alert", notice["run_id"], DEADLINE_MISSED)
        return
    deliver([notice])
