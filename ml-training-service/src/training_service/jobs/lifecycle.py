"""The one writer of job state: every status and progress change is decided and written here.

    queued -> running -> succeeded | failed | cancelled        (cancel: queued -> cancelled)
    running -> queued        (its process died, and the job has a checkpoint: resumes)

A job is run by the process that claimed it (`claim_next`); with several replicas on one
Postgres store that process keeps a lease on it, and a job whose lease ran out is
interrupted (`recover_interrupted`), never run by two processes at once.

The runner calls it to queue, start, cancel, finish and recover jobs; executors report a
running job's progress through a `ProgressReporter`: `JobProgress` below in the service
process, relayed from a worker process over its pipe (worker.py never opens the store).
The store only persists. Final states also count into the job metrics here, once each.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from training_service.jobs.records import (
    Job,
    JobFinishedError,
    JobOutcome,
    JobStatus,
    now_iso,
)
from training_service.jobs.store import JobStore
from training_service.metrics import JOBS_FINISHED, LAST_TEST_ACCURACY

SHUTDOWN_ERROR = "the service shut down while this job was running; submit it again"


class ProgressReporter(Protocol):
    """What training tells the service about a running job, and asks it."""

    def run_started(self, run_id: str) -> None:
        """The job's MLflow run exists (recorded at once: crash recovery ends it)."""

    def epoch_finished(self, epoch: int, metrics: dict[str, float]) -> None:
        """One more epoch done; `metrics` are its test_accuracy, test_loss, train_loss."""

    def stop_requested(self) -> bool:
        """Should training stop at the next batch (cancel, or a service shutdown)?"""
        ...


def record_queued(store: JobStore, job: Job, *, retry_of: Job | None = None) -> None:
    """A new job, waiting for a dispatcher.

    `retry_of`: the failed or cancelled job whose Idempotency-Key the new job takes over (a
    key names one job, the latest); the old job keeps its record, without the key.
    """
    with store.lock:
        if retry_of is not None:
            store.update(retry_of.job_id, idempotency_key=None)
        store.insert(job)


def claim_next(store: JobStore) -> Job | None:
    """queued -> running for the oldest queued job no other dispatcher (or replica) claims;
    None when none waits. The store claims atomically (a row lock with Postgres)."""
    return store.claim_next()


def record_run(store: JobStore, job_id: str, run_id: str) -> None:
    store.update(job_id, run_id=run_id)


def record_epoch(store: JobStore, job_id: str, epoch: int, metrics: dict[str, float]) -> None:
    store.update(job_id, epoch=epoch, metrics=metrics)


def request_cancel(store: JobStore, job_id: str) -> Job:
    """Cancel a queued job at once, or ask a running one to stop at its next batch.

    Raises JobNotFoundError, or JobFinishedError when it already ended.
    """
    with store.lock:
        job = store.get(job_id)
        if job.status.is_final:
            raise JobFinishedError(job.status.value)
        if job.status is JobStatus.QUEUED:
            _write_final(
                store, job_id, JobOutcome(JobStatus.CANCELLED, error="cancelled before it started")
            )
        else:
            store.update(job_id, cancel_requested=1)
        return store.get(job_id)


def request_stop_all(store: JobStore) -> None:
    """Service shutdown: every job this process runs stops at its next batch (other
    replicas' jobs run on)."""
    with store.lock:
        for job in store.list_jobs(JobStatus.RUNNING, limit=1_000_000):
            if store.owns(job.job_id):
                store.update(job.job_id, cancel_requested=1)


def finish(
    store: JobStore, job_id: str, outcome: JobOutcome, *, shutting_down: bool = False
) -> JobOutcome:
    """running -> the outcome's final state; returns the outcome as recorded.

    A job stopped by a shutdown, not by a user, is failed with the reason, as a restart
    would. A job no longer running here (failed meanwhile by a restarted service, or taken
    over by another replica after this one lost its lease) is left alone.
    """
    if shutting_down and outcome.status is JobStatus.CANCELLED:
        outcome = JobOutcome(JobStatus.FAILED, run_id=outcome.run_id, error=SHUTDOWN_ERROR)
    with store.lock:
        if store.owns(job_id):
            _write_final(store, job_id, outcome)
    return outcome


def recover_interrupted(
    store: JobStore, resumable: Callable[[Job], bool] = lambda job: False, *, at_start: bool = True
) -> tuple[list[Job], list[Job]]:
    """The jobs a dead process left `running` (at start-up: a previous process of this
    service; with Postgres, any replica whose lease ran out) either go back to `queued` to
    resume from their checkpoint (`resumable`), or are failed with the reason.

    Returns (resumed, failed), each job as it was.
    """
    resumed: list[Job] = []
    failed: list[Job] = []
    with store.lock:
        for job in store.interrupted_jobs(at_start=at_start):
            if resumable(job):
                store.update(job.job_id, status=JobStatus.QUEUED.value, cancel_requested=0)
                resumed.append(job)
                continue
            store.update(
                job.job_id,
                status=JobStatus.FAILED.value,
                error=(
                    f"the service stopped while this job was running (at epoch {job.epoch}"
                    f"/{job.epochs}); submit the request again"
                ),
                finished_at=now_iso(),
            )
            JOBS_FINISHED.labels(JobStatus.FAILED.value).inc()
            failed.append(job)
    return resumed, failed


def _write_final(store: JobStore, job_id: str, outcome: JobOutcome) -> None:
    fields: dict[str, Any] = {
        "status": outcome.status.value,
        "finished_at": now_iso(),
        "error": outcome.error,
    }
    # Keep what progress reports recorded unless the outcome knows better.
    for name in ("metrics", "run_id", "model_version", "stopped_early_at"):
        if getattr(outcome, name) is not None:
            fields[name] = getattr(outcome, name)
    store.update(job_id, **fields)
    JOBS_FINISHED.labels(outcome.status.value).inc()
    if outcome.status is JobStatus.SUCCEEDED and outcome.metrics:
        LAST_TEST_ACCURACY.set(outcome.metrics["test_accuracy"])


class JobProgress:
    """A `ProgressReporter` for one job that writes through this module (service process)."""

    def __init__(self, store: JobStore, job_id: str) -> None:
        self._store = store
        self._job_id = job_id

    def run_started(self, run_id: str) -> None:
        record_run(self._store, self._job_id, run_id)

    def epoch_finished(self, epoch: int, metrics: dict[str, float]) -> None:
        record_epoch(self._store, self._job_id, epoch, metrics)

    def stop_requested(self) -> bool:
        return self._store.is_cancel_requested(self._job_id)
