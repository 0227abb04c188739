"""Operational endpoints: liveness, readiness, version, Prometheus metrics."""

from fastapi import APIRouter, HTTPException
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from serving_service import SERVICE_NAME, __version__
from serving_service.api.deps import SlotDep
from serving_service.api.responses import errors
from serving_service.api.schemas import Status, VersionResponse

router = APIRouter(tags=["operations"])


@router.get("/health", response_model=Status)
async def health() -> Status:
    """The process is up (it may still have no model)."""
    return Status(status="ok")


@router.get("/ready", response_model=Status, responses=errors(503))
async def ready(slot: SlotDep) -> Status:
    """200 once a model serves the alias; stays 200 while MLflow is down."""
    if slot.current is None:
        raise HTTPException(status_code=503, detail=slot.missing_detail())
    return Status(status="ready")


@router.get("/version", response_model=VersionResponse)
async def version() -> VersionResponse:
    return VersionResponse(service=SERVICE_NAME, version=__version__)


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {
            "description": "Prometheus text exposition format",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        }
    },
)
async def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
