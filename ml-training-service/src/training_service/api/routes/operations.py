"""Operational endpoints: liveness, readiness, version and Prometheus metrics."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, HTTPException, Response, status
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from training_service import SERVICE_NAME, __version__
from training_service.api.deps import SettingsDep
from training_service.api.schemas import ErrorResponse, Health, Ready, VersionInfo
from training_service.metrics import REGISTRY
from training_service.readiness import mlflow_unavailable_reason

router = APIRouter(tags=["operations"])


@router.get("/health", summary="Liveness: the process answers", response_model=Health)
async def health() -> Health:
    return Health()


@router.get(
    "/ready",
    summary="Readiness: 200 only when MLflow answers",
    response_model=Ready,
    responses={503: {"model": ErrorResponse, "description": "MLflow is not reachable"}},
)
async def ready(settings: SettingsDep) -> Ready:
    # The check does blocking I/O: keep it off the event loop.
    reason = await asyncio.to_thread(mlflow_unavailable_reason, settings.mlflow_tracking_uri)
    if reason is not None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, reason)
    return Ready()


@router.get("/version", summary="Service name and version", response_model=VersionInfo)
async def version() -> VersionInfo:
    return VersionInfo(service=SERVICE_NAME, version=__version__)


@router.get(
    "/metrics",
    summary="Prometheus metrics (text exposition format)",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}},
)
async def metrics() -> Response:
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
