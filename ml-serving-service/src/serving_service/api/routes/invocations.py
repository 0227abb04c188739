"""POST /invocations: MLflow's scoring protocol, so `mlflow models serve` clients switch over.

Returns the model's raw output (logits), exactly what mlflow.pyfunc's predict returns for a
pytorch model, under {"predictions": ...}.
"""

from typing import Any

import numpy as np
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response

from serving_service.api.deps import current_model, json_object, orjson_response
from serving_service.api.schemas import (
    ErrorResponse,
    InvocationsRequest,
    InvocationsResponse,
    request_body,
)
from serving_service.model import InvalidInput, LoadedModel

router = APIRouter(tags=["mlflow"])

_FORMATS = ("inputs", "instances", "dataframe_split", "dataframe_records")


@router.post(
    "/invocations",
    response_model=InvocationsResponse,
    responses={code: {"model": ErrorResponse} for code in (413, 415, 422, 503)},
    openapi_extra=request_body(InvocationsRequest),
)
async def invocations(request: Request) -> Response:
    """Score a batch sent in any of MLflow's JSON input formats."""
    # App state read directly, not via Depends: see the predict route's docstring.
    slot, settings = request.app.state.slot, request.app.state.settings
    content_type = request.headers.get("content-type", "application/json")
    if not content_type.startswith("application/json"):
        raise HTTPException(
            status_code=415,
            detail="send the batch as application/json (inputs, instances, "
            "dataframe_split or dataframe_records)",
        )
    body = await json_object(request)
    keys = [k for k in _FORMATS if k in body]
    if len(keys) != 1:
        raise HTTPException(
            status_code=422,
            detail=f"body needs exactly one of {', '.join(_FORMATS)}; got {sorted(body)}",
        )
    model = current_model(slot)
    try:
        batch = _to_array(keys[0], body[keys[0]], model)
        if len(batch) > settings.max_batch_size:
            raise HTTPException(
                status_code=413,
                detail=f"{len(batch)} rows exceed MAX_BATCH_SIZE={settings.max_batch_size}",
            )
        batch = model.reshape_batch(batch)
    except InvalidInput as exc:
        raise HTTPException(status_code=422, detail=str(exc)) from exc
    request.app.state.monitor.observe_inputs(model.version, batch, model.input_stats)
    logits = await request.app.state.batcher.logits(model, batch)
    return orjson_response({"predictions": logits.numpy()})


def _to_array(key: str, value: Any, model: LoadedModel) -> np.ndarray:
    if key == "dataframe_split":
        if not isinstance(value, dict) or "data" not in value:
            raise InvalidInput("'dataframe_split' needs 'data' (and optionally 'columns')")
        value = value["data"]
    elif key == "dataframe_records":
        if not isinstance(value, list) or not all(isinstance(r, dict) for r in value):
            raise InvalidInput("'dataframe_records' must be a list of objects")
        value = [list(r.values()) for r in value]
    elif isinstance(value, dict):
        # Named tensor inputs: this service serves single-input models.
        if len(value) != 1:
            raise InvalidInput("the model takes one tensor input; send one named input")
        value = next(iter(value.values()))
    if not isinstance(value, list) or not value:
        raise InvalidInput(f"'{key}' must be a non-empty list")
    try:
        return np.asarray(value, dtype=np.float32)
    except (ValueError, TypeError) as exc:
        raise InvalidInput(
            f"'{key}' must hold numbers with the same shape per row, {model.expected_shapes()}"
        ) from exc
