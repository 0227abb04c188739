"""POST /v1/feedback: the true label of an earlier prediction, counted into live accuracy."""

from typing import Any

from fastapi import APIRouter, HTTPException, Request
from pydantic import ValidationError

from serving_service.api.deps import FeedbackToken, MonitorDep, json_object
from serving_service.api.responses import secured
from serving_service.api.schemas import FeedbackRequest, FeedbackResponse, request_body
from serving_service.feedback_ledger import (
    FeedbackAlreadyGiven,
    InvalidLabel,
    StateUnavailable,
    UnknownPrediction,
)

router = APIRouter(prefix="/v1", tags=["monitoring"])


@router.post(
    "/feedback",
    response_model=FeedbackResponse,
    responses=secured(404, 409, 413, 422, 503),
    openapi_extra=request_body(FeedbackRequest),
)
async def feedback(request: Request, monitor: MonitorDep, _: FeedbackToken) -> dict[str, Any]:
    """Record whether a prediction was right; each prediction counts once, whichever replica
    gets it (503 while the shared state store, STATE_URL, does not answer)."""
    # Parsed here like the scoring routes, so a body that is not JSON is a 422 that says so
    # (FastAPI's own body parsing answers 400 to bytes that are not UTF-8).
    try:
        body = FeedbackRequest.model_validate(await json_object(request))
    except ValidationError as exc:
        detail = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise HTTPException(status_code=422, detail=detail) from exc
    try:
        result = await monitor.feedback(body.prediction_id, body.label)
    except UnknownPrediction as exc:
        raise HTTPException(status_code=404, detail=exc.args[0]) from exc
    except FeedbackAlreadyGiven as exc:
        raise HTTPException(status_code=409, detail=str(exc)) from exc
    except InvalidLabel as exc:
        raise HTTPException(status_code=422, detail=str(exc)) from exc
    except StateUnavailable as exc:
        raise HTTPException(status_code=503, detail=str(exc)) from None
    return result
