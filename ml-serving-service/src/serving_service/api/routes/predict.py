"""POST /v1/predict (tensors) and POST /v1/predict/images (PNG or JPEG files): labels and
probabilities from the alias's model or an explicit version.

Requests to these paths are answered by `fastpath.ScoringFastPath` before they reach FastAPI;
these routes declare the operations for the OpenAPI document and answer the same way
(`scoring.Scorer`) when the app runs without that layer.
"""

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from serving_service.api.deps import check_scope, scoring_response
from serving_service.api.responses import bearer, secured
from serving_service.api.schemas import (
    ImagesRequest,
    ImagesResponse,
    ImagesUpload,
    PredictRequest,
    PredictResponse,
    request_body,
)

router = APIRouter(prefix="/v1", tags=["predict"])


@router.post(
    "/predict",
    response_model=PredictResponse,
    responses=secured(404, 413, 422, 503),
    openapi_extra=bearer(request_body(PredictRequest)),
)
async def predict(request: Request) -> Response:
    """Classify images with the alias's model, or with `version` when it is given."""
    # The Request and app state, no Depends: dependency solving is per-request work that
    # costs more than a small model's forward pass (see api/deps.py).
    check_scope(request, "predict")
    body = await request.body()
    return await scoring_response(request.app.state.scorer.predict(body))


@router.post(
    "/predict/images",
    response_model=ImagesResponse,
    responses=secured(404, 413, 415, 422, 503),
    openapi_extra=bearer(request_body(ImagesRequest, multipart=ImagesUpload)),
)
async def predict_images(
    request: Request,
    top_k: Annotated[int | None, Query(ge=1, le=100, description="Classes per image (5)")] = None,
    version: Annotated[str | None, Query(description="A registered version, not the alias")] = None,
) -> Response:
    """Classify PNG or JPEG files (multipart parts named `files`, or base64 in JSON), resized
    and converted as the served version was trained; one answer per file, in order."""
    # The query parameters are declared for the document; the scorer reads the raw query.
    check_scope(request, "predict")
    body = await request.body()
    scorer = request.app.state.scorer
    answer = scorer.predict_images(
        body, request.headers.get("content-type"), request.scope.get("query_string", b"")
    )
    return await scoring_response(answer)
