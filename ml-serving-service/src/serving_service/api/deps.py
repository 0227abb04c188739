"""Shared request wiring: typed access to app state, auth, fast JSON in and out.

The routes other than scoring take what they need as typed dependencies (`SlotDep`,
`MonitorDep`, ...). The scoring routes (`/v1/predict`, `/invocations`) take only the
`Request` and call `app.state.scorer`: dependency solving costs more per request than a
small model's forward pass (they are normally answered by `fastpath.py` anyway).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request
from fastapi.responses import Response
from fastapi.security import HTTPBearer

from serving_service.auth import TokenSet, header
from serving_service.config import Settings
from serving_service.monitoring import LiveMonitor
from serving_service.reload_channel import ReloadChannel
from serving_service.scoring import ScoringError, parse_json_object
from serving_service.slot import ModelSlot
from serving_service.watcher import AliasWatcher

# Declares the bearer scheme in the OpenAPI document; the check itself is `TokenSet`.
_bearer = HTTPBearer(auto_error=False, description="A token of API_TOKEN or API_TOKENS")

# Dependencies are `async def` on purpose: FastAPI runs plain `def` dependencies in a thread
# pool, and three thread hops per request cost more than the model's forward pass.


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_slot(request: Request) -> ModelSlot:
    slot: ModelSlot = request.app.state.slot
    return slot


async def get_watcher(request: Request) -> AliasWatcher:
    watcher: AliasWatcher = request.app.state.watcher
    return watcher


async def get_monitor(request: Request) -> LiveMonitor:
    monitor: LiveMonitor = request.app.state.monitor
    return monitor


async def get_reload_channel(request: Request) -> ReloadChannel | None:
    channel: ReloadChannel | None = request.app.state.reload_channel
    return channel


SettingsDep = Annotated[Settings, Depends(get_settings)]
SlotDep = Annotated[ModelSlot, Depends(get_slot)]
WatcherDep = Annotated[AliasWatcher, Depends(get_watcher)]
MonitorDep = Annotated[LiveMonitor, Depends(get_monitor)]
# None: the state stays in this process (STATE_URL empty), there is no one to tell.
ReloadChannelDep = Annotated[ReloadChannel | None, Depends(get_reload_channel)]


def check_scope(request: Request, scope: str) -> None:
    """401/403 unless the request's bearer token holds `scope` (see auth.TokenSet)."""
    tokens: TokenSet = request.app.state.tokens
    open_ = scope == "predict" and request.app.state.settings.predict_open
    operation = f"{request.method} {request.url.path}"
    denied = tokens.authorize(header(request.scope["headers"]), scope, operation, open_)
    if denied is not None:
        raise HTTPException(denied.status, detail=denied.detail, headers=denied.headers)


def requires(scope: str) -> Callable[..., Awaitable[None]]:
    """A dependency that checks `scope`; it also marks the route as bearer-protected."""

    async def dependency(request: Request, _: Annotated[Any, Depends(_bearer)]) -> None:
        check_scope(request, scope)

    return dependency


AdminToken = Annotated[None, Depends(requires("admin"))]
FeedbackToken = Annotated[None, Depends(requires("feedback"))]


async def json_object(request: Request) -> dict[str, Any]:
    """The body as a JSON object, or 422 saying why it is not one."""
    body = await request.body()
    with scoring_errors_as_http():
        return parse_json_object(body)


async def scoring_response(answer: Awaitable[bytes]) -> Response:
    """A `Scorer` answer as a JSON response, its `ScoringError` as the matching HTTP error."""
    with scoring_errors_as_http():
        return Response(await answer, media_type="application/json")


@contextmanager
def scoring_errors_as_http() -> Iterator[None]:
    try:
        yield
    except ScoringError as exc:
        raise HTTPException(status_code=exc.status, detail=exc.detail) from exc
