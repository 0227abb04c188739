"""What a failed check reports, and the exception that carries it from the task to the alert.

A check that finds a problem raises ``CheckFailed`` with one ``Finding`` per kind of problem.
``CheckFailed`` is an ``AirflowFailException`` (retrying cannot fix a rejected model or a
drifting input), and the failure callback receives the very exception object, so
``PipelineAlertNotifier`` reads ``kind`` and ``details`` from it instead of parsing the message.
Every other failure is alerted as ``task_failed``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from airflow.sdk.exceptions import AirflowFailException

# The alert kinds a webhook receiver can route on.
QUALITY_GATE_FAILED = "quality_gate_failed"
LIVE_ACCURACY_DROP = "live_accuracy_drop"
INPUT_DRIFT = "input_drift"
SERVING_UNHEALTHY = "serving_unhealthy"
TASK_FAILED = "task_failed"
# Not failures: notices on the same webhook (alerts.py), told apart by kind and severity.
TASK_RETRY = "task_retry"
RUN_SUCCEEDED = "run_succeeded"
DEADLINE_MISSED = "deadline_missed"


@dataclass(frozen=True)
class Finding:
    """One problem a check found: its alert kind, a sentence for people, the numbers behind it."""

    kind: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)


class CheckFailed(AirflowFailException):
    """A check failed: fail the task without retries and alert with each finding's kind."""

    def __init__(self, summary: str, findings: Sequence[Finding]) -> None:
        if not findings:
            raise ValueError("CheckFailed needs at least one finding")
        self.summary = summary
        self.findings = tuple(findings)
        super().__init__(f"{summary}: " + "; ".join(f.message for f in self.findings))

    @property
    def alert(self) -> dict[str, Any]:
        """``kind`` and ``details`` of the first finding (the only one, for most checks)."""
        first = self.findings[0]
        return {"kind": first.kind, "details": first.details}

    def __reduce__(self) -> tuple[Any, ...]:
        # Exceptions pickle as cls(*args) by default, which this signature does not accept.
        return (type(self), (self.summary, self.findings))
