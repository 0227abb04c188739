"""POST /v1/predict: labels and probabilities from the alias's model or an explicit version.

Requests to this path are answered by `fastpath.ScoringFastPath` before they reach FastAPI;
this route declares the operation for the OpenAPI document and answers the same way
(`scoring.Scorer.predict`) when the app runs without that layer.
"""

from fastapi import APIRouter, Request
from fastapi.responses import Response

from serving_service.api.deps import scoring_response
from serving_service.api.responses import errors
from serving_service.api.schemas import PredictRequest, PredictResponse, request_body

router = APIRouter(prefix="/v1", tags=["predict"])


@router.post(
    "/predict",
    response_model=PredictResponse,
    responses=errors(404, 413, 422, 503),
    openapi_extra=request_body(PredictRequest),
)
async def predict(request: Request) -> Response:
    """Classify images with the alias's model, or with `version` when it is given."""
    # The Request and app state, no Depends: dependency solving is per-request work that
    # costs more than a small model's forward pass (see api/deps.py).
    body = await request.body()
    return await scoring_response(request.app.state.scorer.predict(body))
