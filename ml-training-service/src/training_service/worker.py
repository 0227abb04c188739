"""Job executors: where a job's training actually runs.

`ProcessJobExecutor` (the default) trains in a pool of worker processes started once with
the service: training is Python-heavy (the batch loop, MLflow calls, torch.export) and in a
thread it would hold the GIL often enough to add tens of milliseconds to every request
(measured in benchmarks/). A process only competes for CPU, and the service pins it to
TORCH_THREADS intra-op threads. `InlineJobExecutor` runs the job in the caller's thread; the
unit tests use it with a stand-in pipeline.

The service process itself never imports torch or MLflow, so it starts in seconds.
Both executors run `execute_job`, which reports progress and the run id straight into the job store
and polls it for cancellation, so the API sees the same thing whichever executor runs.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from training_service.data import DatasetNotFoundError, DatasetStore
from training_service.jobs import Job, JobOutcome, JobStatus, JobStore, TrainingDefaults
from training_service.logs import LogFormat, bound_request_id, configure_logging
from training_service.params import EpochResult, TrainingCancelled, TrainingParams

if TYPE_CHECKING:  # the service process never imports torch or MLflow itself
    from training_service.pipeline import PipelineOutcome

log = logging.getLogger(__name__)

#: How often a running job looks for a cancel request (seconds): a DB read per batch is waste.
CANCEL_POLL_SECONDS = 0.25


def execute_job(
    job: Job,
    store: JobStore,
    datasets: DatasetStore,
    defaults: TrainingDefaults,
    pipeline: Callable[..., PipelineOutcome] | None = None,
    still_wanted: Callable[[], bool] = lambda: True,
) -> JobOutcome:
    """Run one job's pipeline; progress goes to `store`, the end state is returned.

    Every line logged meanwhile (MLflow's too) carries the job's request id.
    """
    with bound_request_id(job.request_id):
        return _execute_job(job, store, datasets, defaults, pipeline, still_wanted)


def _execute_job(
    job: Job,
    store: JobStore,
    datasets: DatasetStore,
    defaults: TrainingDefaults,
    pipeline: Callable[..., PipelineOutcome] | None,
    still_wanted: Callable[[], bool],
) -> JobOutcome:
    if pipeline is None:
        from training_service.pipeline import run_training_pipeline

        pipeline = run_training_pipeline
    last_poll = 0.0
    cancelled = False

    def should_stop() -> bool:
        nonlocal last_poll, cancelled
        now = time.monotonic()
        if now - last_poll >= CANCEL_POLL_SECONDS:
            last_poll = now
            cancelled = store.is_cancel_requested(job.job_id) or not still_wanted()
        return cancelled

    def on_epoch(epoch: EpochResult) -> None:
        store.update(job.job_id, epoch=epoch.epoch, metrics=epoch_metrics(epoch))
        log.info(
            "job %s: epoch %d/%d test_accuracy=%.4f",
            job.job_id,
            epoch.epoch,
            job.epochs,
            epoch.test_accuracy,
            extra={"job_id": job.job_id, "epoch": epoch.epoch, **epoch_metrics(epoch)},
        )

    job_fields = {"job_id": job.job_id}
    try:
        dataset = datasets.load(job.dataset_id)
        log.info(
            "job %s: training on dataset %s",
            job.job_id,
            job.dataset_id,
            extra={**job_fields, "dataset_id": job.dataset_id, "pid": os.getpid()},
        )
        outcome = pipeline(
            dataset,
            TrainingParams(**job.params),
            experiment=defaults.experiment,
            model_name=defaults.model_name,
            register=job.register,
            job_id=job.job_id,
            request_id=job.request_id,
            on_run_started=lambda run_id: store.update(job.job_id, run_id=run_id),
            on_epoch=on_epoch,
            should_stop=should_stop,
        )
    except TrainingCancelled:
        return JobOutcome(JobStatus.CANCELLED, error="cancelled while running")
    except DatasetNotFoundError:
        return JobOutcome(
            JobStatus.FAILED, error=f"dataset '{job.dataset_id}' no longer exists in DATA_DIR"
        )
    except Exception as exc:  # reported on the job; the service keeps running
        log.exception("job %s failed", job.job_id, extra=job_fields)
        return JobOutcome(JobStatus.FAILED, error=f"{type(exc).__name__}: {exc}")
    log.info(
        "job %s: run %s finished, model version %s",
        job.job_id,
        outcome.run_id,
        outcome.model_version,
        extra={**job_fields, "run_id": outcome.run_id, "model_version": outcome.model_version},
    )
    return JobOutcome(
        JobStatus.SUCCEEDED,
        metrics=epoch_metrics(outcome.result.final),
        run_id=outcome.run_id,
        model_version=outcome.model_version,
    )


def epoch_metrics(epoch: EpochResult) -> dict[str, float]:
    return {
        "test_accuracy": epoch.test_accuracy,
        "test_loss": epoch.test_loss,
        "train_loss": epoch.train_loss,
    }


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
        torch_threads: int | None = None,
    ) -> None:
        self._args = (store, datasets, defaults, pipeline)
        self._tracking_uri = tracking_uri
        self._torch_threads = torch_threads

    def execute(self, job: Job) -> JobOutcome:
        # Configured on first use, not at start-up: importing torch and MLflow takes seconds.
        if self._torch_threads is not None:
            import torch

            torch.set_num_threads(self._torch_threads)
            self._torch_threads = None
        if self._tracking_uri is not None:
            import mlflow

            from training_service.registry import route_mlflow_prints_to_log

            route_mlflow_prints_to_log()
            mlflow.set_tracking_uri(self._tracking_uri)
            self._tracking_uri = None
        return execute_job(job, *self._args)

    def shutdown(self) -> None:
        pass


@dataclass(frozen=True)
class WorkerConfig:
    """What a worker process needs to rebuild its own stores and MLflow client (picklable)."""

    db_path: Path
    datasets_dir: Path
    defaults: TrainingDefaults
    tracking_uri: str
    torch_threads: int
    service_pid: int
    log_level: str = "info"
    log_format: LogFormat = "json"


# Per-process state of a worker, set once by `_init_worker`.
_worker: dict[str, object] = {}


def _init_worker(config: WorkerConfig) -> None:
    # A spawned process starts with bare logging: give it the service's format, before
    # MLflow is imported (it would install a handler of its own).
    configure_logging(config.log_level, config.log_format)
    import mlflow
    import torch

    import training_service.pipeline  # noqa: F401  (warm imports before the first job)
    from training_service.registry import route_mlflow_prints_to_log

    route_mlflow_prints_to_log()
    torch.set_num_threads(config.torch_threads)
    mlflow.set_tracking_uri(config.tracking_uri)
    _worker["store"] = JobStore(config.db_path)
    _worker["datasets"] = DatasetStore(config.datasets_dir)
    _worker["config"] = config


def _warm_up() -> int:
    return os.getpid()


def _execute_in_worker(job: Job) -> JobOutcome:
    config = _worker["config"]
    assert isinstance(config, WorkerConfig)

    def service_alive() -> bool:
        # A worker orphaned by a killed service stops instead of training (and registering)
        # a job the restarted service has already marked failed.
        return os.getppid() == config.service_pid

    return execute_job(
        job,
        _worker["store"],  # type: ignore[arg-type]
        _worker["datasets"],  # type: ignore[arg-type]
        config.defaults,
        still_wanted=service_alive,
    )


class ProcessJobExecutor:
    """A pool of spawned worker processes, started (and warmed) with the service."""

    def __init__(self, config: WorkerConfig, workers: int) -> None:
        self._config = config
        self._workers = workers
        self._pool = self._new_pool()

    def _new_pool(self) -> ProcessPoolExecutor:
        # spawn, not fork: the service process has threads, and forking those is unsafe.
        pool = ProcessPoolExecutor(
            max_workers=self._workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
            initargs=(self._config,),
        )
        for _ in range(self._workers):
            pool.submit(_warm_up)  # import torch/MLflow now, not when the first job arrives
        return pool

    def execute(self, job: Job) -> JobOutcome:
        try:
            return self._pool.submit(_execute_in_worker, job).result()
        except BrokenProcessPool:
            self._pool = self._new_pool()
            return JobOutcome(
                JobStatus.FAILED,
                error="the training worker process died (out of memory?); submit it again",
            )

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
