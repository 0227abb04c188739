"""A pure ASGI layer that answers the scoring routes without entering FastAPI.

`POST /v1/predict`, `POST /v1/predict/images` and `POST /invocations` are the traffic of a
model server. For them this layer reads the body, calls `scoring.Scorer` and sends the JSON
answer itself: no routing, no `Request`, no dependency solving, no `Response` object. That
cut the cost of a scoring request by about half (see the README's performance section).
Every other request, and other methods on these paths, go on to FastAPI unchanged. The
layer sits inside `TelemetryMiddleware`, so request ids, metrics and logs are the same on
both paths; it puts the route's path in the scope (as routing would) so metrics are
labelled with it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from serving_service.auth import TokenSet, header
from serving_service.scoring import Scorer, ScoringError

log = logging.getLogger(__name__)

_JSON = (b"content-type", b"application/json")


@dataclass(frozen=True)
class ScoringRoute:
    """What `scope["route"]` holds for the metrics label: the path, like a matched route."""

    path: str


_ROUTES = {
    path: ScoringRoute(path) for path in ("/v1/predict", "/v1/predict/images", "/invocations")
}


class ScoringFastPath:
    """Serves the POST scoring routes (`_ROUTES`); passes everything else through."""

    def __init__(
        self,
        app: ASGIApp,
        scorer: Scorer,
        tokens: TokenSet | None = None,
        predict_open: bool = False,
    ) -> None:
        self.app = app
        self._scorer = scorer
        self._tokens = tokens = tokens or TokenSet(())
        # No token configured (local) or PREDICT_OPEN: the scoring routes need none.
        self._open = predict_open or tokens.empty

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path")
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        if path == "/v1/predict":
            handler = _predict
        elif path == "/invocations":
            handler = _invocations
        elif path == "/v1/predict/images":
            handler = _predict_images
        else:
            await self.app(scope, receive, send)
            return
        scope["route"] = _ROUTES[path]
        if not self._open:  # the same rule as the FastAPI routes (api/deps.py)
            denied = self._tokens.authorize(header(scope["headers"]), "predict", f"POST {path}")
            if denied is not None:
                await _send_json(
                    send,
                    denied.status,
                    orjson.dumps({"detail": denied.detail}),
                    [(b"www-authenticate", b"Bearer")] if denied.status == 401 else [],
                )
                return
        body = await _read_body(receive)
        if body is None:  # the client went away before sending its body
            return
        try:
            status, payload = 200, await handler(self._scorer, scope, body)
        except ScoringError as exc:
            status, payload = exc.status, orjson.dumps({"detail": exc.detail})
        except Exception as exc:
            log.exception("unhandled error")
            status, payload = 500, orjson.dumps({"detail": f"internal error: {exc}"})
        await _send_json(send, status, payload)


async def _send_json(
    send: Send, status: int, payload: bytes, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    headers = [_JSON, (b"content-length", str(len(payload)).encode())]
    headers.extend(extra or ())
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


async def _predict(scorer: Scorer, scope: Scope, body: bytes) -> bytes:
    return await scorer.predict(body)


async def _invocations(scorer: Scorer, scope: Scope, body: bytes) -> bytes:
    return await scorer.invocations(body, _content_type(scope))


async def _predict_images(scorer: Scorer, scope: Scope, body: bytes) -> bytes:
    return await scorer.predict_images(body, _content_type(scope), scope.get("query_string", b""))


def _content_type(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"content-type":
            return str(value.decode("latin-1"))
    return None


async def _read_body(receive: Receive) -> bytes | None:
    chunks: list[Any] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)
