"""POST /v1/predict: labels and probabilities from the alias's model or an explicit version.

The hot path: orjson in, one numpy conversion, one torch call shared with the requests of
the same event-loop turn (batching.py), orjson out. The model runs on the event loop thread
because a hop to a thread pool costs more than a small model's forward pass; torch is
limited to few threads so it does not fight the loop for cores.
App state is read from the request instead of through `Depends`: resolving three
dependencies per request cost about as much as the forward pass itself.
"""

from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response

from serving_service.api.deps import current_model, json_object, orjson_response
from serving_service.api.schemas import ErrorResponse, PredictRequest, PredictResponse, request_body
from serving_service.metrics import count_predictions
from serving_service.model import InvalidInput, LoadedModel, ModelLoadError, SmokeTestError
from serving_service.registry import RegistryUnavailable, VersionNotFound
from serving_service.slot import VersionCache

router = APIRouter(prefix="/v1", tags=["predict"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse} for code in (404, 413, 422, 503)
}


@router.post(
    "/predict",
    response_model=PredictResponse,
    responses=_ERRORS,
    openapi_extra=request_body(PredictRequest),
)
async def predict(request: Request) -> Response:
    """Classify images with the alias's model, or with `version` when it is given."""
    state = request.app.state
    slot, settings = state.slot, state.settings
    body = await json_object(request)
    instances = body.get("instances")
    if instances is None:
        raise HTTPException(status_code=422, detail="body needs 'instances': a list of images")
    if isinstance(instances, list) and len(instances) > settings.max_batch_size:
        raise HTTPException(
            status_code=413,
            detail=f"{len(instances)} instances exceed MAX_BATCH_SIZE={settings.max_batch_size};"
            " split the batch",
        )
    version = body.get("version")
    alias: str | None
    if version is None:
        model, alias = current_model(slot), slot.alias
    else:
        model, alias = await explicit_version(state.versions, slot.current, str(version)), None
    try:
        batch = model.to_batch(instances)
    except InvalidInput as exc:
        raise HTTPException(status_code=422, detail=str(exc)) from exc
    labels, _, probs = model.labels(await state.batcher.logits(model, batch))
    count_predictions(model.version, labels)
    monitor = state.monitor
    if alias is not None:  # drift is about the live traffic of the alias, not candidate tests
        monitor.observe_inputs(model.version, batch, model.input_stats)
    return orjson_response(
        {
            "predictions": labels,
            "probabilities": probs,
            "prediction_ids": monitor.issue(model.version, model.classes, labels),
            "model": {"name": model.name, "alias": alias, "version": model.version},
        }
    )


async def explicit_version(
    versions: VersionCache, current: LoadedModel | None, version: str
) -> LoadedModel:
    """A registered version by number: the serving one if it matches, else cached/loaded."""
    if current is not None and current.version == version:
        return current
    try:
        return await versions.get(version)
    except VersionNotFound as exc:
        raise HTTPException(status_code=404, detail=str(exc)) from exc
    except RegistryUnavailable as exc:
        raise HTTPException(status_code=503, detail=str(exc)) from exc
    except (ModelLoadError, SmokeTestError) as exc:
        raise HTTPException(
            status_code=422, detail=f"version '{version}' cannot serve predictions: {exc}"
        ) from exc
