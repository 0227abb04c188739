"""The bounded job runner: admits jobs (idempotency, queue limit) and dispatches them.

MAX_CONCURRENT_JOBS dispatcher threads each claim the oldest queued job from the store and
hand it to an executor (executors.py), by default a worker process, so training never
competes with the event loop for the GIL. Every state change goes through `lifecycle` and is
in the store before it is visible over HTTP, so a restart never loses a job: finished jobs
stay, queued jobs run, and jobs that were running resume from their checkpoint or are failed
with the reason. With several replicas on one Postgres store, any replica runs any queued
job (dispatchers also poll every JOB_POLL_SECONDS), and a keeper thread renews this
replica's leases and recovers the jobs of replicas whose leases ran out.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from training_service.checkpoints import checkpoint_path
from training_service.data import DatasetStore, build_dataset
from training_service.jobs import lifecycle
from training_service.jobs.executors import JobExecutor
from training_service.jobs.records import (
    IdempotencyConflictError,
    Job,
    JobNotFoundError,
    JobStatus,
    QueueFullError,
    request_fingerprint,
)
from training_service.jobs.store import DuplicateJobError, JobStore
from training_service.logs import bound_request_id
from training_service.metrics import JOB_DURATION
from training_service.params import TrainingParams
from training_service.recovery import OUTAGE_FAILURE_TEXT, OpenRun, RunCloser
from training_service.tune_spec import TUNE_KEY, TuneSpec

# The logger name of job lines since 0.1.0 (log queries select on it), kept across the split.
log = logging.getLogger("training_service.jobs")

#: A job that ended like this is run again (as a new job) when its Idempotency-Key returns.
RETRYABLE = frozenset({JobStatus.FAILED, JobStatus.CANCELLED})


class JobRunner:
    """Accepts jobs (bounded queue) and dispatches them, MAX_CONCURRENT_JOBS at a time."""

    def __init__(
        self,
        store: JobStore,
        datasets: DatasetStore,
        executor: JobExecutor,
        *,
        model_name: str,
        max_concurrent: int = 1,
        max_queued: int = 8,
        run_closer: RunCloser | None = None,
        checkpoints_dir: Path | None = None,
        poll_seconds: float = 1.0,
        lease_check_seconds: float = 10.0,
    ) -> None:
        self.store = store
        self.datasets = datasets
        self.executor = executor
        self.model_name = model_name
        self.max_concurrent = max_concurrent
        self.max_queued = max_queued
        self._run_closer = run_closer  # ends runs that failed jobs left open in MLflow
        self._checkpoints_dir = checkpoints_dir  # where interrupted jobs' checkpoints are
        self._poll_seconds = poll_seconds  # look for jobs queued by other replicas
        self._lease_check_seconds = lease_check_seconds  # renew leases, recover expired ones
        # Wake-up calls for the dispatchers ("job": one may be queued; None: stop).
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._dispatchers: list[threading.Thread] = []
        self._stopping = False
        self._stopped = threading.Event()

    def start(self) -> list[Job]:
        """Recover from the previous process, then start dispatching; returns failed jobs."""
        interrupted = self._recover(at_start=True)
        self._remove_stale_checkpoints()
        for index in range(self.max_concurrent):
            dispatcher = threading.Thread(target=self._dispatch, name=f"job-dispatcher-{index}")
            dispatcher.daemon = True  # never block interpreter exit; state is already persisted
            dispatcher.start()
            self._dispatchers.append(dispatcher)
            self._queue.put("job")  # jobs queued before this start run now
        keeper = threading.Thread(target=self._keep_leases, name="job-leases", daemon=True)
        keeper.start()
        return interrupted

    def _recover(self, *, at_start: bool) -> list[Job]:
        """Requeue (checkpoint) or fail the jobs a dead process left running; returns failed."""
        resumed, interrupted = lifecycle.recover_interrupted(
            self.store, self._has_checkpoint, at_start=at_start
        )
        where = "the service stopped" if at_start else "its replica stopped renewing its lease"
        for job in interrupted:
            log.warning(
                "job %s was running when %s: marked failed",
                job.job_id,
                where,
                extra={"job_id": job.job_id, "request_id": job.request_id},
            )
        for job in resumed:
            log.warning(
                "job %s was running when %s: resuming after epoch %d",
                job.job_id,
                where,
                job.epoch,
                extra={"job_id": job.job_id, "request_id": job.request_id},
            )
            self._queue.put("job")
        if not at_start and self._run_closer is not None:
            open_runs = [OpenRun(job.job_id, job.run_id) for job in interrupted if job.run_id]
            if open_runs:
                self._run_closer.close(*open_runs)
        return interrupted

    def _keep_leases(self) -> None:
        """Renew this replica's leases; recover jobs whose replica let its lease run out."""
        while not self._stopped.wait(self._lease_check_seconds):
            try:
                self.store.renew_leases()
                if not self._stopping:
                    self._recover(at_start=False)
            except Exception as exc:  # the store is away: retried at the next tick
                log.warning("could not renew job leases: %s", exc)

    def _has_checkpoint(self, job: Job) -> bool:
        if self._checkpoints_dir is None:
            return False
        return checkpoint_path(self._checkpoints_dir, job.job_id).is_file()

    def _remove_stale_checkpoints(self) -> None:
        """Start-up (no job trains here yet): checkpoints of jobs that ended (a resumed job
        cancelled while queued) and half-written temporary files of a crash go. Files of a
        job running on another replica (shared DATA_DIR, Postgres store) stay."""
        if self._checkpoints_dir is None or not self._checkpoints_dir.is_dir():
            return
        for path in self._checkpoints_dir.iterdir():
            stale = False
            if path.suffix == ".tmp":  # .<job_id>.pt.<pid>.tmp
                job_id = path.name.removeprefix(".").split(".pt.", 1)[0]
                stale = not self._status_is(job_id, lambda status: status is JobStatus.RUNNING)
            elif path.suffix == ".pt":
                stale = self._status_is(path.stem, lambda status: status.is_final, unknown=True)
            if stale:
                path.unlink(missing_ok=True)

    def _status_is(
        self, job_id: str, predicate: Callable[[JobStatus], bool], *, unknown: bool = False
    ) -> bool:
        try:
            return predicate(self.store.get(job_id).status)
        except JobNotFoundError:
            return unknown

    def stop(self, timeout: float = 5.0) -> None:
        """Ask running jobs to stop and stop dispatching.

        Queued jobs stay `queued` on disk, and the next start runs them: from here on no job
        starts (see `_run`), so none trains or registers after the store has closed.
        """
        with self.store.lock:  # a job either started before (and is asked to stop) or never
            self._stopping = True
            lifecycle.request_stop_all(self.store)
        for _ in self._dispatchers:
            self._queue.put(None)
        for dispatcher in self._dispatchers:
            dispatcher.join(timeout)
        self._stopped.set()
        self.executor.shutdown()

    def submit(
        self,
        *,
        params: TrainingParams,
        dataset_id: str | None,
        register: bool,
        request_body: dict[str, Any],
        idempotency_key: str | None = None,
        request_id: str | None = None,
        search: TuneSpec | None = None,
    ) -> tuple[Job, bool]:
        """Queue a job; returns (job, created). A replayed Idempotency-Key returns the old job,
        unless it ended failed or cancelled: then a new job takes the key over (a retry).

        A `search` (POST /v1/tune) makes it a search job: its trials count as its epochs.

        Raises IdempotencyConflictError, QueueFullError or DatasetNotFoundError.
        """
        fingerprint = request_fingerprint(request_body)
        retried: Job | None = None
        with self.store.lock:
            if idempotency_key is not None:
                existing = self.store.by_idempotency_key(idempotency_key)
                if existing is not None:
                    if existing.request_sha256 != fingerprint:
                        raise IdempotencyConflictError(idempotency_key)
                    if existing.status not in RETRYABLE:
                        return existing, False
                    retried = existing
            if self.store.count_by_status()[JobStatus.QUEUED.value] >= self.max_queued:
                raise QueueFullError
            if dataset_id is None:
                # No dataset named: snapshot a fresh digits split with the job's seed.
                dataset = build_dataset("digits", data_dir=self.datasets.root, seed=params.seed)
                dataset_id = self.datasets.save(dataset).dataset_id
            else:
                self.datasets.info(dataset_id)  # raises DatasetNotFoundError
            job = Job(
                job_id=f"job-{uuid.uuid4().hex[:12]}",
                status=JobStatus.QUEUED,
                params=asdict(params)
                if search is None
                else {**asdict(params), TUNE_KEY: search.model_dump(mode="json")},
                register=register,
                dataset_id=dataset_id,
                epochs=params.epochs if search is None else search.num_trials,
                model_name=self.model_name if register else None,
                idempotency_key=idempotency_key,
                request_sha256=fingerprint,
                request_id=request_id,
            )
            try:
                lifecycle.record_queued(self.store, job, retry_of=retried)
            except DuplicateJobError:  # another replica queued a job under this key first
                if idempotency_key is None:  # only a key can collide
                    raise
                winner = self.store.by_idempotency_key(idempotency_key)
                if winner is None:
                    raise
                if winner.request_sha256 != fingerprint:
                    raise IdempotencyConflictError(idempotency_key) from None
                return winner, False
        self._queue.put("job")
        return job, True

    def cancel(self, job_id: str) -> Job:
        """Cancel a queued job at once, or ask a running one to stop at its next batch."""
        return lifecycle.request_cancel(self.store, job_id)

    def _dispatch(self) -> None:
        while True:
            try:
                wake = self._queue.get(timeout=self._poll_seconds)
            except queue.Empty:  # nothing queued here; another replica may have queued some
                wake = "poll"
            if wake is None or self._stopping:  # queued jobs stay queued in the store
                return
            while self._claim_and_run():
                pass

    def _claim_and_run(self) -> bool:
        """Run the oldest queued job, if any; False when none waits (or the runner stops)."""
        job_id = "?"
        try:
            with self.store.lock:
                if self._stopping:  # shutting down: jobs stay queued for the next start
                    return False
                job = lifecycle.claim_next(self.store)
            if job is None:
                return False
            job_id = job.job_id
            with bound_request_id(job.request_id):
                self._run(job)
        except Exception:  # a bug here (or the store away) must not kill the dispatcher
            log.exception("job %s: unexpected error in the runner", job_id)
            return False
        return True

    def _run(self, job: Job) -> None:
        job_id = job.job_id
        started = time.perf_counter()
        log.info("job %s: started", job_id, extra={"job_id": job_id})
        outcome = self.executor.execute(job)
        JOB_DURATION.observe(time.perf_counter() - started)
        outcome = lifecycle.finish(self.store, job_id, outcome, shutting_down=self._stopping)
        if outcome.run_left_running and outcome.run_id and self._run_closer is not None:
            self._run_closer.close(OpenRun(job_id, outcome.run_id, OUTAGE_FAILURE_TEXT))
        log.info(
            "job %s: %s %s",
            job_id,
            outcome.status.value,
            outcome.error or "",
            extra={"job_id": job_id, "status": outcome.status.value},
        )
