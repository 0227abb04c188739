"""TRAINING_EXECUTOR=ray with search jobs: `RayJobExecutor` plus POST /v1/tune's jobs.

A training job runs as before (a Ray Train run). A search job gets a `TuneControl`
mailbox (a 0-CPU actor holding the search's score board) and a 0-CPU driver task,
`tune_ray.drive_tune`, which runs Ray Tune; the service relays the mailbox's events to the
job's progress and forwards a cancel, exactly as it does for a training job. Neither Ray
Tune nor Optuna is imported in the service process.
"""

from __future__ import annotations

import importlib.util
import threading
from typing import Any

from training_service.jobs.lifecycle import JobProgress
from training_service.jobs.ray_executor import RayJobExecutor, RayUnavailableError, ray_executor
from training_service.jobs.records import Job, JobOutcome, JobStatus, TrainingDefaults
from training_service.jobs.store import JobStore
from training_service.tune_board import TuneControl
from training_service.tune_spec import tune_spec_of


class RayTuneExecutor(RayJobExecutor):
    """Ray Train for training jobs, Ray Tune for search jobs (one driver task per job)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._tune_lock = threading.Lock()
        self._tune_remote: tuple[Any, Any] | None = None  # (TuneControl class, driver task)

    def execute(self, job: Job) -> JobOutcome:
        search = tune_spec_of(job.params)
        if search is None:
            return super().execute(job)
        progress = JobProgress(self._store, job.job_id)
        try:
            ray = self._connect()
        except RayUnavailableError as exc:
            return JobOutcome(JobStatus.FAILED, error=str(exc))
        if importlib.util.find_spec("optuna") is None:
            return JobOutcome(
                JobStatus.FAILED,
                error="search jobs need the optuna package on the service and the Ray nodes",
            )
        with self._tune_lock:
            if self._tune_remote is None:
                from training_service.tune_ray import drive_tune

                self._tune_remote = (
                    self.on_this_node(TuneControl, max_restarts=0),
                    self.on_this_node(drive_tune, max_retries=0),
                )
            control_class, driver = self._tune_remote
        return self._drive(ray, job, control_class.remote(search), driver, progress)


def ray_tune_executor(
    settings: Any, store: JobStore, defaults: TrainingDefaults
) -> RayTuneExecutor:
    """The executor for TRAINING_EXECUTOR=ray, from the service's settings."""
    ray_executor(settings, store, defaults)  # the same checks (the ray extra is installed)
    return RayTuneExecutor(
        store,
        address=settings.ray_address,
        datasets_dir=settings.datasets_dir,
        defaults=defaults,
        tracking_uri=settings.mlflow_tracking_uri,
        mlflow_environment=settings.mlflow_client_environment,
        storage_dir=settings.data_dir / "ray-runs",
    )
