"""Documented error answers, shared by the routes so the OpenAPI document is the whole contract.

Every error body is `{"detail": str}` (`ErrorResponse`), whichever layer answers: the scoring
fast path, a route's `HTTPException` or the app's handlers for validation errors.
"""

from __future__ import annotations

from typing import Any

from serving_service.api.schemas import ErrorResponse

Responses = dict[int | str, dict[str, Any]]


def errors(*status_codes: int) -> Responses:
    """`responses=` for a route that answers these statuses with an `ErrorResponse` body."""
    return {code: {"model": ErrorResponse} for code in status_codes}


def secured(*status_codes: int) -> Responses:
    """`errors(...)` of a route that needs a token: 401 (none or unknown), 403 (wrong scope)."""
    described = {
        401: "Missing or unknown bearer token (`WWW-Authenticate: Bearer`)",
        403: "The token lacks the route's scope; the detail names it",
    }
    answers = errors(*status_codes)
    for code, description in described.items():
        answers[code] = {"model": ErrorResponse, "description": description}
    return answers


def bearer(openapi_extra: dict[str, Any]) -> dict[str, Any]:
    """`openapi_extra` of a route that checks its token itself (the scoring routes)."""
    return {**openapi_extra, "security": [{"HTTPBearer": []}]}
