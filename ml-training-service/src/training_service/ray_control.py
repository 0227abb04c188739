"""What the service and a job running on a Ray cluster share (torch-free, ray-free).

`RayJobSpec` is everything the cluster side needs to run one job (picklable, no secret:
MLflow credentials come from the Ray nodes' own environment). `JobControl` is the job's
mailbox, created by the service as a Ray actor (0 CPUs): the rank-0 training worker posts
`run_started` and `epoch_finished` events and the final outcome there, the service drains
the events every CANCEL_POLL_SECONDS and relays them to `lifecycle`, and posts a stop
request that every worker reads. So progress and cancel behave as with local jobs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from training_service.jobs.records import Job, JobOutcome, TrainingDefaults

#: An event for the service: ("run_started", run_id) or ("epoch_finished", epoch, metrics).
Event = tuple[Any, ...]


@dataclass(frozen=True)
class RayJobSpec:
    """One job as the Ray cluster runs it; DATA_DIR must be the same path on every node."""

    job: Job
    datasets_dir: Path
    defaults: TrainingDefaults
    tracking_uri: str
    mlflow_environment: dict[str, str]
    networks: dict[str, str]
    #: Ray Train's run folder (RunConfig.storage_path); removed when the job ends.
    storage_dir: Path


class JobControl:
    """A job's mailbox between the service and its Ray workers (used as a Ray actor)."""

    def __init__(self) -> None:
        self._events: list[Event] = []
        self._stop = False
        self._run_id: str | None = None
        self._outcome: JobOutcome | None = None

    # Written by the rank-0 worker.
    def run_started(self, run_id: str) -> None:
        self._run_id = run_id
        self._events.append(("run_started", run_id))

    def epoch_finished(self, epoch: int, metrics: dict[str, float]) -> None:
        self._events.append(("epoch_finished", epoch, metrics))

    def finished(self, outcome: JobOutcome) -> None:
        self._outcome = outcome

    # Read by the workers and the driver.
    def stop_requested(self) -> bool:
        return self._stop

    def run_id(self) -> str | None:
        return self._run_id

    def outcome(self) -> JobOutcome | None:
        return self._outcome

    # Used by the service.
    def request_stop(self) -> None:
        self._stop = True

    def drain(self) -> list[Event]:
        events, self._events = self._events, []
        return events
