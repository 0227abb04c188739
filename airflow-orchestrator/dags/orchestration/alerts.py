"""Alerting: a notifier used as ``on_failure_callback`` that logs and posts JSON to a webhook.

The webhook is optional: it is used only when the ``alert_webhook`` connection exists, e.g.
``AIRFLOW_CONN_ALERT_WEBHOOK='{"conn_type": "http", "host": "https://hooks.example.com/T0/B0"}'``
(a full URL in ``host`` is posted to as is). A broken webhook never hides the original failure.

Each payload has a ``kind`` to route on and the ``details`` (numbers) behind it: a task that
raised ``CheckFailed`` sends one payload per finding (``findings.py``); any other failure is
``task_failed``.
"""

from __future__ import annotations

import logging
from typing import Any

from airflow.providers.http.hooks.http import HttpHook
from airflow.sdk import BaseHook, BaseNotifier

from orchestration.findings import TASK_FAILED, CheckFailed
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


def _webhook_configured(conn_id: str) -> bool:
    try:
        BaseHook.get_connection(conn_id)
    except Exception:  # AirflowNotFoundException, or no secrets backend reachable at all
        return False
    return True


def build_alerts(context: Any) -> list[dict[str, Any]]:
    """The alerts' JSON bodies from an Airflow callback context: one per finding, at least one."""
    ti = context.get("ti") or context.get("task_instance")
    dag_run = context.get("dag_run")
    exception = context.get("exception")
    base = {
        "source": "airflow-orchestrator",
        "severity": "error",
        "dag_id": getattr(ti, "dag_id", None) or getattr(dag_run, "dag_id", None),
        "run_id": getattr(ti, "run_id", None) or getattr(dag_run, "run_id", None),
        "task_id": getattr(ti, "task_id", None),
        "try_number": getattr(ti, "try_number", None),
        "error": str(exception) if exception is not None else context.get("reason"),
    }
    if isinstance(exception, CheckFailed):
        return [
            {**base, "kind": finding.kind, "details": finding.details}
            for finding in exception.findings
        ]
    details = {"exception_type": type(exception).__name__} if exception is not None else {}
    return [{**base, "kind": TASK_FAILED, "details": details}]


class PipelineAlertNotifier(BaseNotifier):
    """Log the failure at ERROR level and, when ``alert_webhook`` exists, POST it as JSON."""

    def __init__(self, webhook_conn_id: str = ALERT_WEBHOOK_CONN_ID) -> None:
        super().__init__()
        self.webhook_conn_id = webhook_conn_id

    def notify(self, context: Any) -> None:
        alerts = build_alerts(context)
        for alert in alerts:
            log.error(
                "ALERT %s %s.%s failed: %s details=%s",
                alert["kind"],
                alert["dag_id"],
                alert["task_id"],
                alert["error"],
                alert["details"],
            )
        if not _webhook_configured(self.webhook_conn_id):
            log.info("no '%s' connection: alert logged only", self.webhook_conn_id)
            return
        for alert in alerts:
            self._post(alert)

    def _post(self, alert: dict[str, Any]) -> None:
        headers = dict(JSON_HEADERS)
        if alert["dag_id"] and alert["run_id"]:
            headers[REQUEST_ID_HEADER] = request_id(alert["dag_id"], alert["run_id"])
        try:
            hook = HttpHook(method="POST", http_conn_id=self.webhook_conn_id)
            response = hook.run_with_advanced_retry(
                HTTP_RETRY_ARGS, None, None, headers, HTTP_EXTRA_OPTIONS, json=alert
            )
            check_service_response(response)
        except Exception:
            log.exception(
                "could not post the %s alert to '%s'", alert["kind"], self.webhook_conn_id
            )
