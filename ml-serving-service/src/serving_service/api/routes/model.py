"""GET /v1/model and POST /v1/model/reload: what serves the alias, and re-resolving it now."""

from fastapi import APIRouter

from serving_service.api.deps import AdminToken, MonitorDep, ReloadChannelDep, SlotDep, WatcherDep
from serving_service.api.responses import secured
from serving_service.api.schemas import LiveMonitoring, ModelInfo, RefusedVersion, ReloadResponse

router = APIRouter(prefix="/v1/model", tags=["model"])


@router.get("", response_model=ModelInfo)
async def model_info(slot: SlotDep, monitor: MonitorDep) -> ModelInfo:
    """The serving version, its run's metrics, whether the registry answers, live monitoring."""
    model = slot.current
    registry = {True: "reachable", False: "unreachable", None: "unknown"}[slot.registry_reachable]
    return ModelInfo(
        name=slot.name,
        alias=slot.alias,
        version=model.version if model else None,
        run_id=model.run_id if model else None,
        loaded_at=model.loaded_at if model else None,
        metrics=model.metrics if model else {},
        classes=list(model.classes) if model else None,
        input_shape=list(model.instance_shape) if model else None,
        preprocessing=model.preprocessing.describe() if model and model.preprocessing else None,
        registry=registry,  # type: ignore[arg-type]
        last_error=slot.last_error,
        refused_versions=dict(slot.refused),
        refused=RefusedVersion.model_validate(slot.refused_now) if slot.refused_now else None,
        live=LiveMonitoring.model_validate(await monitor.report()),
    )


@router.post("/reload", response_model=ReloadResponse, responses=secured())
async def reload_model(
    slot: SlotDep, watcher: WatcherDep, channel: ReloadChannelDep, _: AdminToken
) -> ReloadResponse:
    """Re-resolve the alias now (also retries a version refused before); with STATE_URL,
    every other replica is asked to do the same."""
    if channel is not None:
        await channel.announce()  # the others load while this one does
    result = await watcher.check(retry_refused=True)
    return ReloadResponse(
        name=slot.name, alias=slot.alias, version=result.version, swapped=result.swapped
    )
