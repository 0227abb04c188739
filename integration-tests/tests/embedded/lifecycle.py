"""What the embedded suite's session-wide lifecycle run produced (see conftest.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from scripts.embedded.airflow_api import DagRunResult


@dataclass(frozen=True)
class PromotedRun:
    """One pipeline run followed by one model_management run."""

    pipeline: DagRunResult
    management: DagRunResult
    job: dict[str, Any]

    @property
    def version(self) -> str:
        return str(self.job["model_version"])
