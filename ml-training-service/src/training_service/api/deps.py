"""Shared request wiring: settings, stores, the job runner, request headers, token scopes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, Header, HTTPException, Request
from fastapi.security import HTTPBearer

from training_service.auth import Tokens
from training_service.config import Settings
from training_service.data import DatasetStore
from training_service.dataset_keys import DatasetKeys
from training_service.jobs.runner import JobRunner


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_datasets(request: Request) -> DatasetStore:
    datasets: DatasetStore = request.app.state.datasets
    return datasets


def get_dataset_keys(request: Request) -> DatasetKeys:
    keys: DatasetKeys = request.app.state.dataset_keys
    return keys


def get_runner(request: Request) -> JobRunner:
    runner: JobRunner = request.app.state.runner
    return runner


def get_request_id(request: Request) -> str:
    """The request's id (its X-Request-ID, or the one the middleware generated)."""
    request_id: str = request.state.request_id
    return request_id


SettingsDep = Annotated[Settings, Depends(get_settings)]
DatasetsDep = Annotated[DatasetStore, Depends(get_datasets)]
DatasetKeysDep = Annotated[DatasetKeys, Depends(get_dataset_keys)]
RunnerDep = Annotated[JobRunner, Depends(get_runner)]
RequestIdDep = Annotated[str, Depends(get_request_id)]
#: The optional `Idempotency-Key` header of the POST routes (each route says what it replays);
#: the parameter must be named `idempotency_key`.
IdempotencyKeyDep = Annotated[
    str | None,
    Header(
        min_length=1,
        max_length=200,
        description="The same key with the same body replays the first answer; "
        "with another body it is a 409.",
    ),
]

# Declares the bearer scheme in the OpenAPI document; the check itself is auth.Tokens.
_bearer = HTTPBearer(
    auto_error=False, description="A token of API_TOKEN (every scope) or API_TOKENS (named)."
)


def check_scope(request: Request, scope: str) -> None:
    """401 unless the request carries a configured token, 403 unless it holds `scope`."""
    tokens: Tokens = request.app.state.tokens
    authorization = next((v for k, v in request.scope["headers"] if k == b"authorization"), None)
    refusal = tokens.check(authorization, scope, f"{request.method} {request.url.path}")
    if refusal is not None:
        raise HTTPException(refusal.status, refusal.detail, headers=refusal.headers)


def requires(scope: str) -> Callable[..., Awaitable[None]]:
    """A dependency checking `scope`; it also marks the route bearer-protected in OpenAPI."""

    async def dependency(request: Request, _: Annotated[Any, Depends(_bearer)]) -> None:
        check_scope(request, scope)

    return dependency


#: POST /v1/datasets and POST /v1/train.
TrainScope = Depends(requires("train"))
#: Cancelling a job.
AdminScope = Depends(requires("admin"))
