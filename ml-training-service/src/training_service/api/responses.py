"""Documented error answers, shared by the routes so the OpenAPI document is the whole contract.

Every error body is `{"detail": str}` (see app.py); FastAPI's default 422 schema (a list of
pydantic errors) would not match it, so each route documents its 422 with ErrorResponse too.
"""

from __future__ import annotations

from typing import Any

from training_service.api.schemas import ErrorResponse

Responses = dict[int | str, dict[str, Any]]


def error(status_code: int, description: str) -> Responses:
    return {status_code: {"model": ErrorResponse, "description": description}}


UNAUTHORIZED = error(401, "Missing or unknown bearer token (see API_TOKEN, API_TOKENS)")


def forbidden(scope: str) -> Responses:
    return error(403, f"The bearer token lacks scope '{scope}'")


#: The answers of a route that needs a token with `scope`.
def needs_scope(scope: str) -> Responses:
    return {**UNAUTHORIZED, **forbidden(scope)}


INVALID = error(422, "Invalid input: the detail names each field to fix")


def errors(*parts: Responses) -> Responses:
    """Merge documented answers; 422 is always included (every route validates input)."""
    merged: Responses = dict(INVALID)
    for part in parts:
        merged.update(part)
    return merged
