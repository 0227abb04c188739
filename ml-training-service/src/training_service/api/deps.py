"""Shared request wiring: settings, stores, the job runner, request headers, bearer-token auth."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, Header, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

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

_bearer = HTTPBearer(auto_error=False, description="API_TOKEN of the service.")


def require_token(
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """Mutating endpoints need `Authorization: Bearer <API_TOKEN>` when API_TOKEN is set."""
    expected = settings.token
    if not expected:
        return
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing bearer token: send 'Authorization: Bearer <API_TOKEN>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if not secrets.compare_digest(credentials.credentials.encode(), expected.encode()):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "invalid bearer token: use the service's API_TOKEN",
            headers={"WWW-Authenticate": "Bearer"},
        )


Authorized = Depends(require_token)
