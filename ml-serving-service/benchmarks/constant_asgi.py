"""The ceiling on the service's own path: the scoring fast path with a constant scorer.

uvicorn runs `serving_service.fastpath.ScoringFastPath`, the pure ASGI layer the service
answers `POST /v1/predict` and `POST /invocations` with, under the same settings (uvloop,
httptools, no access log, the same worker count); its scorer parses nothing and runs no
model: it returns a precomputed answer, the bytes the service itself answered for a body of
that length (the benchmark records them into the file named by `BENCH_CONSTANT_ANSWERS`),
or a one-label answer for other bodies. What the service spends above this endpoint is its
own work: telemetry middleware, JSON parsing, the model, the answer.

    uvicorn constant_asgi:app --loop uvloop --http httptools --no-access-log
"""

from __future__ import annotations

import json
import os
from typing import Any

from serving_service.fastpath import ScoringFastPath

_DEFAULT = b'{"predictions":["0"]}'


class ConstantScorer:
    """`scoring.Scorer`'s two operations, answered from memory by body length."""

    def __init__(self, answers: dict[int, bytes]) -> None:
        self._answers = answers

    async def predict(self, body: bytes) -> bytes:
        return self._answers.get(len(body), _DEFAULT)

    async def invocations(self, body: bytes, content_type: str | None) -> bytes:
        return self._answers.get(len(body), _DEFAULT)


async def _health(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Everything the fast path passes on: 200 on /health (readiness), 404 elsewhere."""
    if scope["type"] == "lifespan":
        await receive()  # startup
        await send({"type": "lifespan.startup.complete"})
        await receive()  # shutdown
        await send({"type": "lifespan.shutdown.complete"})
        return
    status = 200 if scope["path"] == "/health" else 404
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json")]})  # fmt: skip
    await send({"type": "http.response.body", "body": b'{"status":"ok"}'})


def _load_answers() -> dict[int, bytes]:
    path = os.environ.get("BENCH_CONSTANT_ANSWERS")
    if not path:
        return {}
    with open(path) as f:
        return {int(k): v.encode() for k, v in json.load(f).items()}


app = ScoringFastPath(_health, ConstantScorer(_load_answers()))  # type: ignore[arg-type]
