"""Application factory (FastAPI app with settings, registry, model slot, alias watcher, live
monitor) and the ASGI stack uvicorn serves (telemetry, scoring fast path, FastAPI)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib
import logging
import os
from collections.abc import AsyncIterator

import torch
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp

from serving_service import SERVICE_NAME, __version__
from serving_service.api.routes import feedback, invocations, model, operations, predict
from serving_service.batching import MicroBatcher
from serving_service.config import Settings, get_settings
from serving_service.fastpath import ScoringFastPath
from serving_service.feedback_ledger import Ledger, ProcessLedger
from serving_service.guard import RequestGuard
from serving_service.middleware import TelemetryMiddleware
from serving_service.monitoring import new_monitor
from serving_service.registry import Registry
from serving_service.reload_channel import ReloadChannel
from serving_service.scoring import Scorer
from serving_service.shared_state import RedisLedger, connect, describe
from serving_service.slot import ModelSlot, VersionCache
from serving_service.watcher import AliasWatcher

log = logging.getLogger(__name__)


def calm_garbage_collector() -> None:
    """Keep the cyclic garbage collector from pausing the event loop; call once, at startup.

    Everything loaded at startup (torch, mlflow, FastAPI: millions of objects) lives as long
    as the process; frozen, the collector stops rescanning it. The modules torch imports on
    the first model load (sympy, dynamo...) are imported first so they are frozen too.
    Request garbage is acyclic and freed at once by reference counting, so collections can
    be rare. With CPython's defaults, collections stalled the loop for up to 300 ms under
    load (p99 323 ms at 16 clients, 15 ms with the collector off). Models are never frozen:
    a swapped-out model's graph sits in reference cycles, and frozen objects are never
    collected; the watcher collects each replaced model instead (`AliasWatcher`).
    """
    with contextlib.suppress(ImportError):  # what torch.export.load imports, if it moves
        importlib.import_module("torch.export.pt2_archive._package")
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)


def create_app(settings: Settings | None = None) -> FastAPI:
    """The FastAPI app: routes, state and error handlers (see `serving_stack` for serving)."""
    settings = settings or get_settings()
    torch.set_num_threads(settings.torch_threads)
    password = settings.mlflow_tracking_password
    if settings.mlflow_tracking_password_file is not None and password is not None:
        # From MLFLOW_TRACKING_PASSWORD_FILE: the MLflow client reads only the variable.
        os.environ["MLFLOW_TRACKING_PASSWORD"] = password.get_secret_value()
    tokens = settings.tokens()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        log_access_rules(settings)
        log_state_store(settings)
        calm_garbage_collector()
        tasks = [asyncio.create_task(app.state.watcher.run(), name="alias-watcher")]
        ledger, channel = app.state.monitor.ledger, app.state.reload_channel
        if isinstance(ledger, RedisLedger):
            tasks.append(asyncio.create_task(ledger.run_flusher(), name="state-flusher"))
        if channel is not None:
            tasks.append(asyncio.create_task(channel.listen(), name="reload-listener"))
        try:
            yield
        finally:
            app.state.scorer.batcher.close()
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if isinstance(ledger, RedisLedger):
                await ledger.aclose()

    app = FastAPI(
        title=SERVICE_NAME,
        version=__version__,
        description="Predictions from the MLflow registry alias, hot-swapped without downtime.",
        lifespan=lifespan,
        telemetry={
            "tracing": settings.otel_telemetry,
            "metrics": settings.otel_telemetry,
            "logs": settings.otel_telemetry,
        },
    )
    registry = Registry(
        settings.mlflow_tracking_uri, settings.model_name, settings.scoring_inline_ms / 1000
    )
    slot = ModelSlot(name=settings.model_name, alias=settings.model_alias)
    app.state.settings = settings
    app.state.tokens = tokens
    app.state.slot = slot
    app.state.watcher = AliasWatcher(registry, slot, settings.model_poll_interval)
    ledger, app.state.reload_channel = shared_state(settings, app.state.watcher)
    app.state.versions = VersionCache(
        registry, settings.version_cache_size, settings.failed_version_ttl
    )
    app.state.monitor = new_monitor(settings.monitor_window, ledger)
    app.state.scorer = Scorer(
        settings=settings,
        slot=slot,
        versions=app.state.versions,
        batcher=MicroBatcher(),
        monitor=app.state.monitor,
    )

    routers = (predict.router, invocations.router, feedback.router, operations.router, model.router)
    for router in routers:
        app.include_router(router)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        # One readable sentence instead of pydantic's error list, per the team contract.
        parts = [
            f"{'.'.join(str(p) for p in err.get('loc', ()))}: {err.get('msg')}"
            for err in exc.errors()
        ]
        return JSONResponse(status_code=422, content={"detail": "; ".join(parts)})

    @app.exception_handler(Exception)
    async def unexpected_error(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return JSONResponse(status_code=500, content={"detail": f"internal error: {exc}"})

    return app


def shared_state(settings: Settings, watcher: AliasWatcher) -> tuple[Ledger, ReloadChannel | None]:
    """The ledger of prediction ids and feedback, and the reload channel: this process's
    own (STATE_URL empty) or every replica's in Redis (see `shared_state.py`)."""
    url = settings.shared_state_url
    if url is None:
        return ProcessLedger(settings.monitor_window, settings.feedback_memory), None
    client = connect(url)
    ledger = RedisLedger(
        client,
        settings.model_name,
        settings.monitor_window,
        settings.feedback_memory,
        settings.feedback_ttl_seconds,
    )
    channel = ReloadChannel(
        client, settings.model_name, settings.model_alias, watcher, ledger.health
    )
    return ledger, channel


def serving_stack(app: FastAPI) -> ASGIApp:
    """What uvicorn runs: request ids and metrics around the scoring fast path around `app`.

    Both layers wrap the FastAPI app from the outside instead of being added as its
    middleware: FastAPI's own layers (error, telemetry and body-limit middleware) cost
    about 40 us per request, a fifth of a scoring request, and the scoring routes need none
    of them. Every other request passes through to FastAPI and its middleware unchanged.
    """
    scorer: Scorer = app.state.scorer
    settings: Settings = app.state.settings
    fast = ScoringFastPath(app, scorer, app.state.tokens, settings.predict_open)
    return TelemetryMiddleware(RequestGuard(fast, settings.max_body_bytes, settings.host_names()))


def log_access_rules(settings: Settings) -> None:
    """The startup line naming the tokens and scopes (never a value), body cap and hosts."""
    tokens = settings.tokens()
    if tokens.empty:
        log.warning(
            "no API_TOKEN or API_TOKENS configured (ENVIRONMENT=local): every route is open"
        )
    else:
        log.info("bearer tokens: %s", tokens.describe())
    if settings.predict_open:
        log.warning("PREDICT_OPEN=true: the scoring routes need no token")
    log.info("MAX_BODY_BYTES=%d, ALLOWED_HOSTS=%s", settings.max_body_bytes, settings.allowed_hosts)


def log_state_store(settings: Settings) -> None:
    """Where prediction ids, feedback and live accuracy live (never STATE_URL's password)."""
    url = settings.shared_state_url
    if url is not None:
        log.info("shared state and reload broadcast: %s", describe(url))
    elif settings.workers > 1:
        log.warning(
            "WORKERS=%d without STATE_URL: each worker keeps its own prediction ids, feedback "
            "and live accuracy, and a reload reaches one worker; set STATE_URL to share them",
            settings.workers,
        )
