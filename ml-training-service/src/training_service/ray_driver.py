"""The driver of one job on the Ray cluster: a Ray task (0 CPUs) that runs Ray Train.

The service submits `drive_job` as a task, so neither torch nor Ray Train is ever imported
in the API process. The task starts a `TorchTrainer` (gloo, `num_workers` workers of
`cpus_per_worker` CPUs, no automatic retry) whose workers run `ray_train.train_worker`,
and returns the job's `JobOutcome`: the one rank 0 posted to the job's `JobControl`, or,
when a worker died first (killed, out of memory, its node lost), a failure naming the ranks
and causes. A run the dead rank 0 left RUNNING in MLflow is ended FAILED here, with a
`failure` tag saying why. Ray Train's run folder under DATA_DIR is removed at the end.

A one-worker job has no peers to synchronise: it runs the same `TorchTrainer` in Ray
Train's local mode (`num_workers=0`: the train function in the calling process) inside a
`cpus_per_worker`-CPU Ray task. Ray reuses that task's worker process from job to job, so
torch and MLflow are imported once, not once per job, and no controller or worker group is
built: Ray Train builds both for every `fit`, 12-17 s on two cores before the function
starts (measured, README).
"""

from __future__ import annotations

import re
import shutil
from typing import Any

from training_service.jobs.records import JobOutcome, JobStatus
from training_service.mlflow_client import apply_client_environment
from training_service.params import TrainingParams
from training_service.ray_control import RayJobSpec

#: Characters of each rank's error kept in the job's error text.
_CAUSE_CHARS = 300
#: How Ray says why a worker process ended (in ActorDiedError's text).
_EXIT = re.compile(r"Worker exit type: \S+ Worker exit detail: [^.]*\.")
CANCELLED = "cancelled while running"


def drive_job(spec: RayJobSpec, control: Any) -> JobOutcome:
    """Train `spec.job` with Ray Train; never raises (the outcome says how it ended)."""
    import ray

    params = TrainingParams(**spec.job.params)
    try:
        if params.num_workers == 1:
            alone = ray.remote(num_cpus=params.cpus_per_worker, max_retries=0)(train_alone)
            try:
                ray.get(alone.remote(spec, control))
            except ray.exceptions.RayError as exc:  # it raised, or its process or node died
                raised = exc.cause if isinstance(exc, ray.exceptions.RayTaskError) else None
                raise RankFailures({0: raised or exc}) from exc
        else:
            trainer(spec, control, params.num_workers).fit()
        failure: BaseException | None = None
    except Exception as exc:  # WorkerGroupError, ControllerError, ...
        failure = exc
    finally:
        shutil.rmtree(spec.storage_dir / spec.job.job_id, ignore_errors=True)
    posted: JobOutcome | None = ray.get(control.outcome.remote())
    if failure is None and posted is not None:
        return posted
    if ray.get(control.stop_requested.remote()):
        outcome = JobOutcome(JobStatus.CANCELLED, error=CANCELLED)
        status = "KILLED"
    elif posted is not None and posted.status is JobStatus.FAILED:
        outcome, status = posted, "FAILED"  # MLflow did not answer rank 0
    else:
        outcome = JobOutcome(JobStatus.FAILED, error=describe_failure(failure))
        status = "FAILED"
    run_id = ray.get(control.run_id.remote())
    if run_id is not None:
        left_running = not _end_run_if_running(spec, run_id, status, outcome.error or "")
        outcome = JobOutcome(
            outcome.status,
            run_id=run_id,
            error=outcome.error,
            run_left_running=left_running or outcome.run_left_running,
        )
    return outcome


class RankFailures(Exception):
    """What killed the ranks of a run, as Ray Train's WorkerGroupError gives it."""

    def __init__(self, worker_failures: dict[int, BaseException]) -> None:
        super().__init__(f"{len(worker_failures)} rank(s) failed")
        self.worker_failures = worker_failures


def trainer(spec: RayJobSpec, control: Any, num_workers: int) -> Any:
    """The job's TorchTrainer; `num_workers=0` is Ray Train's local mode (this process)."""
    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    from training_service.ray_train import train_worker

    params = TrainingParams(**spec.job.params)
    return TorchTrainer(
        train_worker,
        train_loop_config={"spec": spec, "control": control},
        torch_config=TorchConfig(backend="gloo"),
        scaling_config=ScalingConfig(
            num_workers=num_workers,
            use_gpu=False,
            resources_per_worker={"CPU": params.cpus_per_worker},
        ),
        run_config=RunConfig(
            name=spec.job.job_id,
            storage_path=str(spec.storage_dir),
            failure_config=FailureConfig(max_failures=0),
        ),
    )


def train_alone(spec: RayJobSpec, control: Any) -> None:
    """A one-worker job in this (reused) Ray worker process, on its CPUs' worth of threads."""
    import torch

    torch.set_num_threads(int(TrainingParams(**spec.job.params).cpus_per_worker))
    trainer(spec, control, 0).fit()


def describe_failure(failure: BaseException | None) -> str:
    """One line per failed rank, e.g. "rank 1: ActorDiedError: The actor died ...", under
    a sentence saying the Ray Train worker group failed."""
    if failure is None:
        return "the Ray Train run ended without a result from rank 0"
    causes: dict[int, BaseException] = getattr(failure, "worker_failures", {}) or {}
    if not causes:
        return f"Ray Train failed: {_one_line(failure)}"
    parts = [f"rank {rank}: {_one_line(exc)}" for rank, exc in sorted(causes.items())]
    return "Ray Train workers failed: " + "; ".join(parts)


def _one_line(exc: BaseException) -> str:
    """`Kind: message`, on one line and short; a failed health check names the process's
    end (Ray's "Worker exit type: ... Worker exit detail: ..."), not only the check."""
    inner = getattr(exc, "health_check_failure", None)
    if isinstance(inner, BaseException):
        text = " ".join(str(inner).split())
        exit_info = _EXIT.search(text)
        detail = exit_info.group(0) if exit_info else text[:_CAUSE_CHARS]
        return f"{type(exc).__name__}: the worker process ended ({type(inner).__name__}: {detail})"
    return f"{type(exc).__name__}: {' '.join(str(exc).split())[:_CAUSE_CHARS]}"


def _end_run_if_running(spec: RayJobSpec, run_id: str, status: str, reason: str) -> bool:
    """End the run as `status` if it is still RUNNING, and tag a failed one with `reason`
    (rank 0 may have ended it FAILED itself, not knowing why); False when MLflow could not
    be told."""
    apply_client_environment(spec.mlflow_environment)
    try:
        from mlflow import MlflowClient

        from training_service.recovery import FAILURE_TAG

        client = MlflowClient(tracking_uri=spec.tracking_uri)
        if status == "FAILED":
            client.set_tag(run_id, FAILURE_TAG, reason[:5000])
        if client.get_run(run_id).info.status == "RUNNING":
            client.set_terminated(run_id, status)
    except Exception:
        return False
    return True
