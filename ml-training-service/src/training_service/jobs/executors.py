"""Job executors: where a dispatched job's training actually runs.

`ProcessJobExecutor` (the default) trains in worker processes started once with the
service: training is Python-heavy (the batch loop, MLflow calls, torch.export) and in a
thread it would hold the GIL often enough to add tens of milliseconds to every request
(measured in benchmarks/). A process only competes for CPU, and is pinned to TORCH_THREADS
intra-op threads. `InlineJobExecutor` runs the job in the dispatcher's thread
(JOB_EXECUTOR=thread; the unit tests use it with a stand-in pipeline).

Both run `worker.execute_job`; progress reaches `lifecycle` (the only writer of job state)
directly from the thread, or relayed from the worker's pipe by the dispatcher thread, so the
API sees the same thing whichever executor runs. The service process never imports torch or
MLflow here, so it starts in seconds.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import TYPE_CHECKING, Protocol

from training_service.data import DatasetStore
from training_service.jobs.lifecycle import JobProgress
from training_service.jobs.records import Job, JobOutcome, JobStatus, TrainingDefaults
from training_service.jobs.store import JobStore
from training_service.worker import (
    CANCEL_POLL_SECONDS,
    WorkerConfig,
    configure_training,
    execute_job,
    worker_main,
)

if TYPE_CHECKING:
    from training_service.pipeline import PipelineOutcome

WORKER_DIED = "the training worker process died (out of memory?); submit it again"


class JobExecutor(Protocol):
    """Runs one job to completion (blocking) and reports how it ended; never raises."""

    def execute(self, job: Job) -> JobOutcome: ...

    def shutdown(self) -> None: ...


class InlineJobExecutor:
    """Runs jobs in the dispatcher thread (tests; or JOB_EXECUTOR=thread)."""

    def __init__(
        self,
        store: JobStore,
        datasets: DatasetStore,
        defaults: TrainingDefaults,
        pipeline: Callable[..., PipelineOutcome] | None = None,
        *,
        tracking_uri: str | None = None,
        torch_threads: int = 1,
        mlflow_environment: dict[str, str] | None = None,
    ) -> None:
        self._store = store
        self._datasets = datasets
        self._defaults = defaults
        self._pipeline = pipeline
        self._tracking_uri = tracking_uri
        self._torch_threads = torch_threads
        self._mlflow_environment = mlflow_environment or {}
        self._configure_once = threading.Lock()

    def execute(self, job: Job) -> JobOutcome:
        # Configured on first use, not at start-up: importing torch and MLflow takes seconds.
        with self._configure_once:
            if self._tracking_uri is not None:
                configure_training(
                    self._tracking_uri, self._torch_threads, self._mlflow_environment
                )
                self._tracking_uri = None
        progress = JobProgress(self._store, job.job_id)
        return execute_job(job, progress, self._datasets, self._defaults, self._pipeline)

    def shutdown(self) -> None:
        pass


@dataclass
class _Worker:
    process: BaseProcess
    conn: Connection  # the service's end of the worker's pipe


class ProcessJobExecutor:
    """Worker processes (spawned and warmed with the service), one job at a time each."""

    def __init__(self, store: JobStore, config: WorkerConfig, workers: int) -> None:
        self._store = store
        self._config = config
        # spawn, not fork: the service process has threads, and forking those is unsafe.
        self._context = multiprocessing.get_context("spawn")
        self._idle: queue.Queue[_Worker] = queue.Queue()
        self._lock = threading.Lock()
        self._closed = False
        for _ in range(workers):
            self._idle.put(self._spawn())

    def _spawn(self) -> _Worker:
        conn, child_conn = self._context.Pipe()
        # Not daemonic: at exit the service waits for a worker to end its job's MLflow run.
        process = self._context.Process(
            target=worker_main, args=(self._config, child_conn), name="training-worker"
        )
        process.start()  # imports torch and MLflow now, not when the first job arrives
        child_conn.close()  # the worker holds the only other end: its death reads as EOF
        return _Worker(process, conn)

    def execute(self, job: Job) -> JobOutcome:
        worker = self._idle.get()
        try:
            return self._relay(worker, job, JobProgress(self._store, job.job_id))
        except (EOFError, OSError):
            worker.process.kill()
            worker.process.join(5)
            worker = self._spawn()
            return JobOutcome(JobStatus.FAILED, error=WORKER_DIED)
        finally:
            self._release(worker)

    @staticmethod
    def _relay(worker: _Worker, job: Job, progress: JobProgress) -> JobOutcome:
        """Send the job, write its progress through `progress`, forward a cancel request."""
        worker.conn.send(job)
        cancel_sent = False
        while True:
            if worker.conn.poll(CANCEL_POLL_SECONDS):
                kind, *args = worker.conn.recv()
                if kind == "outcome":
                    outcome: JobOutcome = args[0]
                    return outcome
                if kind == "run_started":
                    progress.run_started(*args)
                elif kind == "epoch_finished":
                    progress.epoch_finished(*args)
            if not cancel_sent and progress.stop_requested():
                worker.conn.send(("cancel", job.job_id))
                cancel_sent = True

    def _release(self, worker: _Worker) -> None:
        with self._lock:
            if not self._closed:
                self._idle.put(worker)
                return
        self._retire(worker)

    @staticmethod
    def _retire(worker: _Worker) -> None:
        with contextlib.suppress(OSError):  # already gone
            worker.conn.send(None)  # exit after the current job, if any
        worker.conn.close()

    def shutdown(self) -> None:
        """Idle workers exit now, busy ones after their job (which was asked to stop)."""
        with self._lock:
            self._closed = True
        while True:
            try:
                self._retire(self._idle.get_nowait())
            except queue.Empty:
                return
