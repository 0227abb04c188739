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
