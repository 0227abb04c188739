"""TRAINING_EXECUTOR=ray: jobs train on the Ray cluster at RAY_ADDRESS with Ray Train.

The service connects to the cluster on first use (`import ray` happens then, never at
import time; torch, MLflow and Ray Train never load in this process). For each job it
creates a `JobControl` actor (the job's mailbox) and submits `ray_driver.drive_job` as a
0-CPU task, both pinned to the service's own node (`on_this_node`); while the task runs,
the dispatcher thread drains the mailbox every CANCEL_POLL_SECONDS into `lifecycle` (run
id, epochs) and forwards a cancel or a shutdown as a stop request, so a Ray job looks like
a local one over HTTP. The job's processes belong to this connection: if the service
process dies, Ray ends them too.

`check_capacity` answers a request that the cluster can never place (more CPUs than it
has, or a worker larger than its largest node) before the job is queued.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import socket
import threading
from pathlib import Path
from typing import Any

from training_service.jobs.lifecycle import JobProgress
from training_service.jobs.records import Job, JobOutcome, JobStatus, TrainingDefaults
from training_service.jobs.store import JobStore
from training_service.networks import NETWORKS
from training_service.params import TrainingParams
from training_service.ray_control import JobControl, RayJobSpec
from training_service.worker import CANCEL_POLL_SECONDS

log = logging.getLogger(__name__)

RAY_NAMESPACE = "training-service"


class ResourceRequestError(ValueError):
    """A job asks for workers or CPUs this executor cannot give (answered with a 422)."""


class RayUnavailableError(RuntimeError):
    """The Ray cluster at RAY_ADDRESS could not be reached (answered with a 503)."""


class RayJobExecutor:
    """Runs each job as a Ray Train run on an existing cluster (one driver task per job)."""

    def __init__(
        self,
        store: JobStore,
        *,
        address: str,
        datasets_dir: Path,
        defaults: TrainingDefaults,
        tracking_uri: str,
        mlflow_environment: dict[str, str],
        storage_dir: Path,
    ) -> None:
        self._store = store
        self._address = address
        self._datasets_dir = datasets_dir.resolve()
        self._defaults = defaults
        self._tracking_uri = tracking_uri
        self._mlflow_environment = dict(mlflow_environment)
        self._storage_dir = storage_dir.resolve()
        self._connect_lock = threading.Lock()
        self._ray: Any = None
        self._remote: tuple[Any, Any] | None = None  # (JobControl actor class, driver task)

    def _connect(self) -> Any:
        with self._connect_lock:
            if self._ray is not None:
                return self._ray
            where = self._address or "auto"
            if not _answers(self._address):
                raise RayUnavailableError(
                    f"the Ray cluster at RAY_ADDRESS={where} does not answer; "
                    "start it or fix RAY_ADDRESS"
                )
            ray = _import_ray_quietly()
            from training_service.ray_driver import drive_job

            try:
                ray.init(
                    address=self._address or "auto",
                    namespace=RAY_NAMESPACE,
                    log_to_driver=False,  # the jobs' output stays in the Ray nodes' logs
                    logging_level=logging.WARNING,
                )
            except Exception as exc:
                with contextlib.suppress(Exception):
                    ray.shutdown()
                raise RayUnavailableError(_connect_failure(where, exc)) from exc
            self._ray = ray
            control = self.on_this_node(JobControl, max_restarts=0)
            driver = self.on_this_node(drive_job, max_retries=0)
            self._remote = (control, driver)
            log.info("connected to the Ray cluster at %s", self._address or "auto")
            return ray

    def on_this_node(self, function_or_class: Any, **options: Any) -> Any:
        """`ray.remote` for a 0-CPU task or actor pinned to this service's own Ray node. A
        job's mailbox and driver task (and Ray Train's controller, which Ray puts on its
        driver's node) then live as long as the service does; anywhere else, losing a Ray
        worker node could take them down and hide the real cause of the job's failure."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        here = self._ray.get_runtime_context().get_node_id()
        strategy = NodeAffinitySchedulingStrategy(node_id=here, soft=False)
        return self._ray.remote(num_cpus=0, scheduling_strategy=strategy, **options)(
            function_or_class
        )

    def check_capacity(self, params: TrainingParams) -> None:
        """Raise ResourceRequestError when the cluster can never run `params`."""
        ray = self._connect()
        total = ray.cluster_resources().get("CPU", 0.0)
        largest = max(
            (node["Resources"].get("CPU", 0.0) for node in ray.nodes() if node.get("Alive")),
            default=0.0,
        )
        needed = params.num_workers * params.cpus_per_worker
        asked = (
            f"num_workers={params.num_workers} x cpus_per_worker={params.cpus_per_worker} "
            f"= {needed} CPUs"
        )
        if params.cpus_per_worker > largest:
            raise ResourceRequestError(
                f"cpus_per_worker={params.cpus_per_worker}, but the largest Ray node has "
                f"{largest:g} CPUs; a worker runs on one node"
            )
        if needed > total:
            raise ResourceRequestError(
                f"{asked}, but the Ray cluster has {total:g} CPUs in all; "
                "ask for fewer workers or CPUs, or add Ray workers"
            )

    def execute(self, job: Job) -> JobOutcome:
        progress = JobProgress(self._store, job.job_id)
        try:
            ray = self._connect()
        except RayUnavailableError as exc:
            return JobOutcome(JobStatus.FAILED, error=str(exc))
        if self._remote is None:  # _connect sets it or raises
            raise RuntimeError("the Ray remote functions were not defined after connecting")
        control_class, driver = self._remote
        return self._drive(ray, job, control_class.remote(), driver, progress)

    def _drive(
        self, ray: Any, job: Job, control: Any, driver: Any, progress: JobProgress
    ) -> JobOutcome:
        """Start `driver` on the job's spec and follow it; the job's `control` actor dies after."""
        spec = RayJobSpec(
            job=job,
            datasets_dir=self._datasets_dir,
            defaults=self._defaults,
            tracking_uri=self._tracking_uri,
            mlflow_environment=self._mlflow_environment,
            networks=dict(NETWORKS),
            storage_dir=self._storage_dir,
        )
        result = driver.remote(spec, control)
        try:
            return self._follow(ray, result, control, progress)
        finally:
            with contextlib.suppress(Exception):
                ray.kill(control)

    @staticmethod
    def _follow(ray: Any, result: Any, control: Any, progress: JobProgress) -> JobOutcome:
        """Relay progress until the driver task returns; forward a stop request once."""
        stop_sent = False
        run_id: str | None = None
        while True:
            done, _ = ray.wait([result], timeout=CANCEL_POLL_SECONDS)
            try:
                events = ray.get(control.drain.remote())
            except Exception:  # the mailbox died with its node: the driver will say why
                events = []
            for kind, *args in events:
                if kind == "run_started":
                    run_id = args[0]
                    progress.run_started(*args)
                elif kind == "epoch_finished":
                    progress.epoch_finished(*args)
            if done:
                break
            if not stop_sent and progress.stop_requested():
                control.request_stop.remote()
                stop_sent = True
        try:
            outcome: JobOutcome = ray.get(result)
        except Exception as exc:  # the driver task itself died (its node was lost)
            return JobOutcome(
                JobStatus.FAILED,
                run_id=run_id,
                error=f"the Ray driver task of this job failed: {type(exc).__name__}: "
                + " ".join(str(exc).split())[:300],
                run_left_running=run_id is not None,
            )
        return outcome

    def shutdown(self) -> None:
        """Running jobs were asked to stop by the runner (their mailboxes relay it)."""


def _answers(address: str, timeout: float = 5.0) -> bool:
    """Does host:port (or ray://host:port) accept a TCP connection? (ray.init waits minutes
    for a dead GCS.) "auto" or an empty address (the local node's) are not checked."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return True
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            return True
    except OSError:
        return False


def _connect_failure(where: str, exc: BaseException) -> str:
    """Why ray.init failed, in words that say what to fix. Ray wraps a refused token in a
    ConnectionError whose cause, a RuntimeError, quotes the AuthenticationError's traceback
    as text (the token itself is never in it)."""
    causes: list[BaseException] = []
    cause: BaseException | None = exc
    while cause is not None and len(causes) < 10:
        causes.append(cause)
        cause = cause.__cause__ or cause.__context__
    if any("AuthenticationError" in f"{type(c).__name__} {c}" for c in causes):
        return (
            f"the Ray cluster at RAY_ADDRESS={where} refused this service's authentication "
            "token: give the service the cluster's token (RAY_AUTH_MODE=token with "
            "RAY_AUTH_TOKEN_PATH or RAY_AUTH_TOKEN) or start the cluster without token auth"
        )
    return (
        f"the Ray cluster at RAY_ADDRESS={where} is not reachable "
        f"({type(exc).__name__}); start it or fix RAY_ADDRESS"
    )


def _import_ray_quietly() -> Any:
    """`import ray` without its side effects on this service's logs: Ray's record factory
    would add `_ray_timestamp_ns` to every JSON line, its C++ handler would print a stack
    dump on every SIGTERM, and ray.init warns that a non-main thread sets no SIGTERM
    handler (uvicorn owns the signals; that is what we want)."""
    os.environ.setdefault("RAY_DISABLE_FAILURE_SIGNAL_HANDLER", "1")
    factory = logging.getLogRecordFactory()
    import ray

    logging.setLogRecordFactory(factory)
    logging.getLogger("ray._private.worker").setLevel(logging.ERROR)
    return ray


def ray_executor(settings: Any, store: JobStore, defaults: TrainingDefaults) -> RayJobExecutor:
    """The executor for TRAINING_EXECUTOR=ray, from the service's settings."""
    if importlib.util.find_spec("ray") is None:  # found without importing it
        raise RuntimeError(
            "TRAINING_EXECUTOR=ray but the ray package is not installed: install the "
            "service with its ray extra (pip install 'ml-training-service[ray]')"
        )
    return RayJobExecutor(
        store,
        address=settings.ray_address,
        datasets_dir=settings.datasets_dir,
        defaults=defaults,
        tracking_uri=settings.mlflow_tracking_uri,
        mlflow_environment=settings.mlflow_client_environment,
        storage_dir=settings.data_dir / "ray-runs",
    )


def check_resources(executor: object, params: TrainingParams) -> None:
    """Raise ResourceRequestError when `executor` cannot run `params`' workers."""
    if isinstance(executor, RayJobExecutor):
        executor.check_capacity(params)
        return
    if params.num_workers > 1 or params.cpus_per_worker > 1:
        raise ResourceRequestError(
            f"num_workers={params.num_workers}, cpus_per_worker={params.cpus_per_worker}: "
            "data-parallel training needs TRAINING_EXECUTOR=ray (this service trains each "
            "job in one local process; its threads are TORCH_THREADS)"
        )
