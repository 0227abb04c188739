"""Operational endpoints: liveness, readiness, version, Prometheus metrics."""

from fastapi import APIRouter, HTTPException
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from serving_service import SERVICE_NAME, __version__
from serving_service.api.deps import MonitorDep, SlotDep
from serving_service.api.responses import errors
from serving_service.api.schemas import Status, VersionResponse

router = APIRouter(tags=["operations"])

DEGRADED_DETAIL = (
    "the shared state store (STATE_URL) does not answer: predictions are served, feedback "
    "answers 503 and live accuracy is not reported until it answers again"
)


@router.get("/health", response_model=Status, response_model_exclude_none=True)
async def health() -> Status:
    """The process is up (it may still have no model)."""
    return Status(status="ok")


@router.get(
    "/ready", response_model=Status, responses=errors(503), response_model_exclude_none=True
)
async def ready(slot: SlotDep, monitor: MonitorDep) -> Status:
    """200 once a model serves the alias; stays 200 while MLflow or the shared state store is
    down (predictions are served), the latter as `degraded` with a detail."""
    if slot.current is None:
        raise HTTPException(status_code=503, detail=slot.missing_detail())
    if monitor.ledger.state() == "unavailable":
        return Status(status="degraded", detail=DEGRADED_DETAIL)
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
