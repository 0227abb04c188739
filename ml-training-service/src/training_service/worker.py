"""The training side of a job: runs the pipeline and reports through a `ProgressReporter`.

`execute_job` is the same code whichever executor runs it (jobs/executors.py): in the
dispatcher's thread it reports straight to `lifecycle.JobProgress`; in a worker process
(`worker_main`) it reports over the process's pipe (`PipeReporter`), and the service relays
the messages to `lifecycle`. A worker never opens the job store: the service owns job state.

Messages on a worker's pipe, service -> worker: a `Job` to run, `("cancel", job_id)`, or
None to exit; worker -> service: `("run_started", run_id)`,
`("epoch_finished", epoch, metrics)`, then `("outcome", JobOutcome)` once per job.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING

from training_service.checkpoints import CheckpointFile, checkpoint_path
from training_service.data import DatasetNotFoundError, DatasetStore
from training_service.jobs.lifecycle import ProgressReporter
from training_service.jobs.records import Job, JobOutcome, JobStatus, TrainingDefaults
from training_service.logs import LogFormat, bound_request_id, configure_logging
from training_service.mlflow_client import MlflowUnavailableError, apply_client_environment
from training_service.networks import NETWORKS
from training_service.params import EpochResult, TrainingCancelled, TrainingParams
from training_service.tune_spec import TUNE_KEY

if TYPE_CHECKING:  # the service process never imports torch or MLflow itself
    from training_service.pipeline import PipelineOutcome

log = logging.getLogger(__name__)

#: How often a running job asks whether to stop (seconds): a store read per batch is waste.
CANCEL_POLL_SECONDS = 0.25


def execute_job(
    job: Job,
    progress: ProgressReporter,
    datasets: DatasetStore,
    defaults: TrainingDefaults,
    pipeline: Callable[..., PipelineOutcome] | None = None,
    still_wanted: Callable[[], bool] = lambda: True,
) -> JobOutcome:
    """Run one job's pipeline; progress goes to `progress`, the end state is returned.

    Every line logged meanwhile (MLflow's too) carries the job's request id.
    """
    with bound_request_id(job.request_id):
        return _execute_job(job, progress, datasets, defaults, pipeline, still_wanted)


def _execute_job(
    job: Job,
    progress: ProgressReporter,
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
            cancelled = progress.stop_requested() or not still_wanted()
        return cancelled

    def on_epoch(epoch: EpochResult) -> None:
        progress.epoch_finished(epoch.epoch, epoch_metrics(epoch))
        log.info(
            "job %s: epoch %d/%d test_accuracy=%.4f",
            job.job_id,
            epoch.epoch,
            job.epochs,
            epoch.test_accuracy,
            extra={"job_id": job.job_id, "epoch": epoch.epoch, **epoch_metrics(epoch)},
        )

    if TUNE_KEY in job.params:  # a hyperparameter search (POST /v1/tune): no checkpoint
        from training_service.tune_local import run_tune_job

        return run_tune_job(job, progress, datasets, defaults, should_stop)
    checkpoint = (
        CheckpointFile(checkpoint_path(defaults.checkpoints_dir, job.job_id))
        if defaults.checkpoints_dir is not None
        else None
    )
    try:
        return _train(
            job, progress, datasets, defaults, pipeline, should_stop, on_epoch, checkpoint
        )
    finally:
        # The job ends here: its checkpoint goes, unless the service died meanwhile (then
        # the restarted service resumes the job from it).
        if checkpoint is not None and still_wanted():
            checkpoint.delete()


def _train(
    job: Job,
    progress: ProgressReporter,
    datasets: DatasetStore,
    defaults: TrainingDefaults,
    pipeline: Callable[..., PipelineOutcome],
    should_stop: Callable[[], bool],
    on_epoch: Callable[[EpochResult], None],
    checkpoint: CheckpointFile | None,
) -> JobOutcome:
    job_fields = {"job_id": job.job_id}
    try:
        dataset = datasets.load(job.dataset_id)
        log.info(
            "job %s: training on dataset %s%s",
            job.job_id,
            job.dataset_id,
            " (resuming from its checkpoint)" if checkpoint and checkpoint.exists() else "",
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
            on_run_started=progress.run_started,
            on_epoch=on_epoch,
            should_stop=should_stop,
            checkpoint=checkpoint,
            workers=defaults.dataloader_workers,
        )
    except TrainingCancelled:
        return JobOutcome(JobStatus.CANCELLED, error="cancelled while running")
    except MlflowUnavailableError as exc:
        log.error("job %s failed: %s", job.job_id, exc, extra=job_fields)
        return JobOutcome(
            JobStatus.FAILED,
            run_id=exc.run_id,
            error=str(exc),
            run_left_running=exc.run_left_running,
        )
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
        stopped_early_at=outcome.result.stopped_early_at,
    )


def epoch_metrics(epoch: EpochResult) -> dict[str, float]:
    return {
        "test_accuracy": epoch.test_accuracy,
        "test_loss": epoch.test_loss,
        "train_loss": epoch.train_loss,
    }


def configure_training(
    tracking_uri: str, torch_threads: int, mlflow_environment: dict[str, str]
) -> None:
    """Once per process that trains: torch threads, MLflow's server, its HTTP retries and
    timeouts, and its printed events."""
    apply_client_environment(mlflow_environment)
    import mlflow
    import torch

    from training_service.tracking import route_mlflow_prints_to_log

    route_mlflow_prints_to_log()
    torch.set_num_threads(torch_threads)
    mlflow.set_tracking_uri(tracking_uri)


@dataclass(frozen=True)
class WorkerConfig:
    """What a worker process needs to rebuild its dataset store and MLflow client (picklable)."""

    datasets_dir: Path
    defaults: TrainingDefaults
    tracking_uri: str
    torch_threads: int
    service_pid: int
    mlflow_environment: dict[str, str]
    log_level: str = "info"
    log_format: LogFormat = "json"
    # The registry as the service saw it at start: networks registered at run time (a test,
    # a plugin) exist in the spawned worker too.
    networks: dict[str, str] = field(default_factory=lambda: dict(NETWORKS))


class PipeReporter:
    """The worker process's `ProgressReporter`: messages to the service over the pipe.

    A closed pipe means the service is gone: the job stops at its next batch (its MLflow
    run ends KILLED) rather than failing on the closed pipe.
    """

    def __init__(self, conn: Connection, job_id: str) -> None:
        self._conn = conn
        self._job_id = job_id
        self._stop = False

    def run_started(self, run_id: str) -> None:
        self._send(("run_started", run_id))

    def epoch_finished(self, epoch: int, metrics: dict[str, float]) -> None:
        self._send(("epoch_finished", epoch, metrics))

    def stop_requested(self) -> bool:
        try:
            while not self._stop and self._conn.poll():  # mid-job the service sends cancels only
                self._stop = self._conn.recv() == ("cancel", self._job_id)
        except (EOFError, OSError):
            self._stop = True
        return self._stop

    def _send(self, message: tuple[object, ...]) -> None:
        try:
            self._conn.send(message)
        except OSError:
            self._stop = True


def worker_main(config: WorkerConfig, conn: Connection) -> None:
    """A worker process: warm up (imports), then run the jobs the service sends, one by one."""
    # A spawned process starts with bare logging: give it the service's format, before
    # MLflow is imported (it would install a handler of its own).
    configure_logging(config.log_level, config.log_format)
    NETWORKS.update(config.networks)
    import training_service.pipeline  # noqa: F401  (warm imports before the first job)

    configure_training(config.tracking_uri, config.torch_threads, config.mlflow_environment)
    datasets = DatasetStore(config.datasets_dir)

    def service_alive() -> bool:
        # A worker orphaned by a killed service stops instead of training (and registering)
        # a job the restarted service has already marked failed.
        return os.getppid() == config.service_pid

    while True:
        try:
            message = conn.recv()
        except EOFError:  # the service is gone
            return
        if message is None:
            return
        if not isinstance(message, Job):  # a cancel that arrived after its job ended
            continue
        reporter = PipeReporter(conn, message.job_id)
        outcome = execute_job(
            message, reporter, datasets, config.defaults, still_wanted=service_alive
        )
        try:
            conn.send(("outcome", outcome))
        except OSError:  # the service is gone; a restarted one has failed the job already
            return
