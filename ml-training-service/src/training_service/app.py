"""The FastAPI application: wiring, lifespan (stores, job runner) and error bodies."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from training_service import SERVICE_NAME, __version__
from training_service.api.routes import datasets, operations, training, tune
from training_service.auth import Tokens
from training_service.config import Settings, get_settings
from training_service.data import DatasetStore
from training_service.data import warm_up as data_warm_up
from training_service.dataset_keys import DatasetKeys
from training_service.guard import RequestGuard
from training_service.jobs.executors import InlineJobExecutor, JobExecutor, ProcessJobExecutor
from training_service.jobs.records import TrainingDefaults
from training_service.jobs.runner import JobRunner
from training_service.jobs.store import open_job_store
from training_service.jobs.tune_executor import ray_tune_executor
from training_service.metrics import REGISTRY, JobStateCollector
from training_service.middleware import REQUEST_ID_HEADER, TelemetryMiddleware
from training_service.recovery import OpenRun, RunCloser
from training_service.worker import WorkerConfig

log = logging.getLogger(__name__)


def _describe_validation_error(exc: RequestValidationError) -> str:
    """One sentence per invalid field, e.g. "body.epochs: Input should be <= 200"."""
    parts = []
    for error in exc.errors():
        location = ".".join(str(p) for p in error.get("loc", ()))
        message = error.get("msg", "invalid value")
        if error.get("type") == "json_invalid":
            message = "request body is not valid JSON"
        parts.append(f"{location}: {message}" if location else message)
    return "; ".join(parts) or "invalid request"


def _announce_security(settings: Settings, tokens: Tokens) -> None:
    """Log which tokens (names and scopes, never values) guard the mutating routes."""
    if settings.mlflow_tracking_password_file is not None and settings.mlflow_tracking_password:
        # MLflow's client (here and in spawned workers) reads its password from the environment.
        os.environ["MLFLOW_TRACKING_PASSWORD"] = (
            settings.mlflow_tracking_password.get_secret_value()
        )
    if tokens.empty:
        log.warning(
            "no API_TOKEN or API_TOKENS configured: POST /v1/datasets, /v1/train and job "
            "cancels are open to anyone who reaches this port (ENVIRONMENT=local)"
        )
    else:
        log.info("bearer tokens configured: %s", tokens.describe())


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    _announce_security(settings, app.state.tokens)
    datasets = DatasetStore(settings.datasets_dir)
    store = open_job_store(
        settings.jobs_db_path, settings.job_database_url, lease_seconds=settings.job_lease_seconds
    )
    defaults = TrainingDefaults(
        experiment=settings.experiment,
        model_name=settings.model_name,
        checkpoints_dir=settings.checkpoints_dir,
        dataloader_workers=settings.dataloader_workers,
    )
    executor: JobExecutor
    if settings.training_executor == "ray":  # Ray is imported on first use, not here
        executor = ray_tune_executor(settings, store, defaults)  # + search jobs
    elif settings.job_executor == "process":
        worker_config = WorkerConfig(
            datasets_dir=settings.datasets_dir,
            defaults=defaults,
            tracking_uri=settings.mlflow_tracking_uri,
            torch_threads=settings.torch_threads,
            service_pid=os.getpid(),
            mlflow_environment=settings.mlflow_client_environment,
            log_level=settings.log_level,
            log_format=settings.log_format,
        )
        executor = ProcessJobExecutor(store, worker_config, workers=settings.max_concurrent_jobs)
    else:  # training shares this process
        executor = InlineJobExecutor(
            store,
            datasets,
            defaults,
            tracking_uri=settings.mlflow_tracking_uri,
            torch_threads=settings.torch_threads,
            mlflow_environment=settings.mlflow_client_environment,
        )
    run_closer = RunCloser(
        settings.mlflow_tracking_uri,
        settings.mlflow_client_environment,
        settings.mlflow_run_close_retry_seconds,
    )
    runner = JobRunner(
        store,
        datasets,
        executor,
        model_name=settings.model_name,
        max_concurrent=settings.max_concurrent_jobs,
        max_queued=settings.max_queued_jobs,
        run_closer=run_closer,
        checkpoints_dir=settings.checkpoints_dir,
        poll_seconds=settings.job_poll_seconds,
        lease_check_seconds=settings.job_lease_seconds / 3,
    )
    collector = JobStateCollector(store.count_by_status)
    REGISTRY.register(collector)
    # scikit-learn takes seconds to import: load it beside start-up, not in the first request.
    threading.Thread(target=data_warm_up, name="dataset-warm-up", daemon=True).start()
    interrupted = runner.start()
    if interrupted:
        log.warning("%d job(s) were interrupted by the last shutdown", len(interrupted))
        open_runs = [OpenRun(job.job_id, job.run_id) for job in interrupted if job.run_id]
        if open_runs:
            run_closer.close(*open_runs)
    app.state.datasets, app.state.runner = datasets, runner
    app.state.dataset_keys = DatasetKeys(settings.dataset_keys_dir)
    try:
        yield
    finally:
        runner.stop()
        REGISTRY.unregister(collector)
        store.close()


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the application; `settings` defaults to the environment's."""
    app = FastAPI(
        title=SERVICE_NAME,
        version=__version__,
        summary="Trains a PyTorch image classifier and registers it in MLflow.",
        lifespan=lifespan,
    )
    settings = settings or get_settings()
    app.state.settings = settings
    app.state.tokens = settings.tokens()
    # The guard runs inside telemetry: its 400s and 413s are counted and logged like others.
    app.add_middleware(
        RequestGuard, max_body_bytes=settings.max_body_bytes, hosts=settings.host_names()
    )
    app.add_middleware(TelemetryMiddleware)
    app.include_router(operations.router)
    app.include_router(datasets.router)
    app.include_router(training.router)
    app.include_router(tune.router)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": _describe_validation_error(exc)}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        # FastAPI answers a body it cannot decode (not UTF-8) with an undocumented 400;
        # it is invalid input like malformed JSON, so it gets the same 422 (found by fuzzing).
        if exc.status_code == 400 and isinstance(exc.__cause__, UnicodeDecodeError):
            return JSONResponse(
                {"detail": "request body is not valid JSON: send UTF-8 encoded JSON"},
                status_code=422,
            )
        return await http_exception_handler(request, exc)

    @app.exception_handler(Exception)
    async def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
        # Starlette runs this handler outside every middleware: add the request id by hand.
        request_id = getattr(request.state, "request_id", None)
        log.exception(
            "unhandled error on %s %s",
            request.method,
            request.url.path,
            extra={"request_id": request_id},
        )
        return JSONResponse(
            {"detail": f"internal error ({type(exc).__name__}); see the service log"},
            status_code=500,
            headers={REQUEST_ID_HEADER: request_id} if request_id else None,
        )

    return app
