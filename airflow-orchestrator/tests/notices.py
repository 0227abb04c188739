"""Expected webhook payloads of the notices every DAG run can post (not failure alerts)."""

from __future__ import annotations

from typing import Any


def run_succeeded(dag_id: str, run_id: str) -> dict[str, Any]:
    """The payload of a DAG's ``on_success_callback`` for a ``dag.test()`` (manual) run."""
    return {
        "source": "airflow-orchestrator",
        "severity": "info",
        "kind": "run_succeeded",
        "dag_id": dag_id,
        "run_id": run_id,
        "task_id": None,
        "try_number": None,
        "error": None,
        "details": {"run_type": "manual"},
    }
