"""Alerting: a notifier used as ``on_failure_callback`` that logs and posts JSON to a webhook.

The webhook is optional: it is used only when the ``alert_webhook`` connection exists, e.g.
``AIRFLOW_CONN_ALERT_WEBHOOK='{"conn_type": "http", "host": "https://hooks.example.com/T0/B0"}'``
(a full URL in ``host`` is posted to as is). A broken webhook never hides the original failure.
"""

from __future__ import annotations

import logging
from typing import Any

from airflow.providers.http.hooks.http import HttpHook
from airflow.sdk import BaseHook, BaseNotifier

from orchestration.service_http import (
    ALERT_WEBHOOK_CONN_ID,
    HTTP_EXTRA_OPTIONS,
    HTTP_RETRY_ARGS,
    JSON_HEADERS,
    check_service_response,
)

log = logging.getLogger(__name__)


def _webhook_configured(conn_id: str) -> bool:
    try:
        BaseHook.get_connection(conn_id)
    except Exception:  # AirflowNotFoundException, or no secrets backend reachable at all
        return False
    return True


def build_alert(context: Any) -> dict[str, Any]:
    """The alert's JSON body from an Airflow callback context."""
    ti = context.get("ti") or context.get("task_instance")
    dag_run = context.get("dag_run")
    exception = context.get("exception")
    return {
        "source": "airflow-orchestrator",
        "severity": "error",
        "dag_id": getattr(ti, "dag_id", None) or getattr(dag_run, "dag_id", None),
        "run_id": getattr(ti, "run_id", None) or getattr(dag_run, "run_id", None),
        "task_id": getattr(ti, "task_id", None),
        "try_number": getattr(ti, "try_number", None),
        "error": str(exception) if exception is not None else context.get("reason"),
    }


class PipelineAlertNotifier(BaseNotifier):
    """Log the failure at ERROR level and, when ``alert_webhook`` exists, POST it as JSON."""

    def __init__(self, webhook_conn_id: str = ALERT_WEBHOOK_CONN_ID) -> None:
        super().__init__()
        self.webhook_conn_id = webhook_conn_id

    def notify(self, context: Any) -> None:
        alert = build_alert(context)
        log.error("ALERT %s.%s failed: %s", alert["dag_id"], alert["task_id"], alert["error"])
        if not _webhook_configured(self.webhook_conn_id):
            log.info("no '%s' connection: alert logged only", self.webhook_conn_id)
            return
        try:
            hook = HttpHook(method="POST", http_conn_id=self.webhook_conn_id)
            response = hook.run_with_advanced_retry(
                HTTP_RETRY_ARGS, None, None, JSON_HEADERS, HTTP_EXTRA_OPTIONS, json=alert
            )
            check_service_response(response)
        except Exception:
            log.exception("could not post the alert to '%s'", self.webhook_conn_id)
