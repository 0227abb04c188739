"""POST /invocations: MLflow's scoring protocol, so `mlflow models serve` clients switch over.

Returns the model's raw output (logits), exactly what mlflow.pyfunc's predict returns for a
pytorch model, under {"predictions": ...}. Like /v1/predict, requests are answered by
`fastpath.ScoringFastPath`; this route documents the operation and answers the same way
without that layer.
"""

from fastapi import APIRouter, Request
from fastapi.responses import Response

from serving_service.api.deps import check_scope, scoring_response
from serving_service.api.responses import bearer, secured
from serving_service.api.schemas import InvocationsRequest, InvocationsResponse, request_body

router = APIRouter(tags=["mlflow"])


@router.post(
    "/invocations",
    response_model=InvocationsResponse,
    responses=secured(413, 415, 422, 503),
    openapi_extra=bearer(request_body(InvocationsRequest)),
)
async def invocations(request: Request) -> Response:
    """Score a batch sent in any of MLflow's JSON input formats."""
    # The Request and app state, no Depends, for speed like /v1/predict (see api/deps.py).
    check_scope(request, "predict")
    body = await request.body()
    content_type = request.headers.get("content-type")
    return await scoring_response(request.app.state.scorer.invocations(body, content_type))
