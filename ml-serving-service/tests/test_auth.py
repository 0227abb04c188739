"""Scoped tokens, the body cap and the Host check, in-process on the stack uvicorn serves.

`serving_stack(app)` (guard -> fast path -> FastAPI) and the bare FastAPI app are driven
through httpx's ASGI transport, so the fast path and the routes are held to the same rules.
The attack tests (integration-tests/tests/attacks/test_serving_attacks.py) repeat the
attacks over real HTTP against a real uvicorn.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from serving_service.app import serving_stack
from serving_service.config import Settings
from tests.test_fastpath import X, _app

TOKENS = "orchestrator:predict,admin:orch-secret-1;client:predict,feedback:client-secret-2"
ORCH = {"Authorization": "Bearer orch-secret-1"}
CLIENT = {"Authorization": "Bearer client-secret-2"}


def _secured(**settings: Any) -> Any:
    app = _app()
    app.state.settings = Settings(
        environment="production", max_batch_size=5, api_tokens=TOKENS, **settings
    )
    app.state.tokens = app.state.settings.tokens()
    return app


async def _call(app: Any, method: str, path: str, **kwargs: Any) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.request(method, path, **kwargs)


def call(app: Any, method: str, path: str, **kwargs: Any) -> httpx.Response:
    return asyncio.run(_call(app, method, path, **kwargs))


@pytest.mark.parametrize("stacked", [True, False], ids=["fast path", "routes"])
@pytest.mark.parametrize("path", ["/v1/predict", "/invocations"])
def test_scoring_needs_a_predict_token(stacked: bool, path: str) -> None:
    app = _secured()
    target = serving_stack(app) if stacked else app
    body = {"instances": X} if path == "/v1/predict" else {"inputs": X}
    missing = call(target, "POST", path, json=body)
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == "Bearer"
    assert "scope 'predict'" in missing.json()["detail"]
    for wrong in ("Bearer nope", "Basic b3JjaC1zZWNyZXQtMQ==", "Bearer  ", "orch-secret-1"):
        assert (
            call(target, "POST", path, json=body, headers={"Authorization": wrong}).status_code
            == 401
        )
    for headers in (ORCH, CLIENT):
        assert call(target, "POST", path, json=body, headers=headers).status_code == 200


@pytest.mark.parametrize("stacked", [True, False], ids=["fast path", "routes"])
def test_non_ascii_tokens_are_401_not_500(stacked: bool) -> None:
    app = _secured()
    target = serving_stack(app) if stacked else app
    for path, body in (
        ("/v1/predict", {"instances": X}),
        ("/v1/feedback", {}),
        ("/v1/model/reload", None),
    ):
        for raw in ("Bearer tökén".encode("latin-1"), "Bearer 令牌".encode(), b"Bearer \xff\xfe"):
            r = call(target, "POST", path, json=body, headers=[(b"authorization", raw)])
            assert r.status_code == 401, (path, raw, r.text)


def test_wrong_scope_is_403_naming_it() -> None:
    app = serving_stack(_secured())
    reload_ = call(app, "POST", "/v1/model/reload", headers=CLIENT)
    assert reload_.status_code == 403
    assert reload_.json()["detail"] == (
        "this token lacks scope 'admin' (needed for POST /v1/model/reload)"
    )
    feedback = call(app, "POST", "/v1/feedback", json={"prediction_id": "x-0", "label": "1"},
                    headers=ORCH)  # fmt: skip
    assert feedback.status_code == 403 and "scope 'feedback'" in feedback.json()["detail"]
    known = call(app, "POST", "/v1/feedback", json={"prediction_id": "x-0", "label": "1"},
                 headers=CLIENT)  # fmt: skip
    assert known.status_code == 404  # past auth: the id is unknown
    for path in ("/health", "/ready", "/version", "/metrics", "/v1/model"):
        assert call(app, "GET", path).status_code == 200, path


def test_api_token_holds_every_scope_and_predict_open_opens_predict_only() -> None:
    app = _app()
    app.state.settings = Settings(
        environment="production", api_token="all-scopes", predict_open=True
    )
    app.state.tokens = app.state.settings.tokens()
    stack = serving_stack(app)
    assert call(stack, "POST", "/v1/predict", json={"instances": X[:1]}).status_code == 200
    assert call(stack, "POST", "/v1/feedback", json={}).status_code == 401
    feedback = call(stack, "POST", "/v1/feedback", json={"prediction_id": "x-0", "label": "1"},
                    headers={"Authorization": "Bearer all-scopes"})  # fmt: skip
    assert feedback.status_code == 404


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("a:predict:x;a:admin:y", "names \\['a'\\] more than once"),
        (
            "a:predict,root:secret-value",
            "entry 1 \\('a'\\): unknown or missing scopes \\['root'\\]",
        ),
        ("a:predict:", "entry 1 \\('a'\\): the token is empty"),
        ("a:predict:tök", "printable ASCII"),
        ("bad name:predict:x", "the name must be"),
    ],
)
def test_bad_api_tokens_stop_the_service_naming_the_entry(value: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message) as caught:
        Settings(api_tokens=value)
    assert "secret-value" not in str(caught.value)


def test_secrets_from_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "tokens").write_text(TOKENS + "\n")
    (tmp_path / "token").write_text("from-a-file\n")
    settings = Settings(api_tokens_file=tmp_path / "tokens", api_token_file=tmp_path / "token")
    assert settings.tokens().describe() == (
        "api_token (admin,feedback,predict), orchestrator (admin,predict), "
        "client (feedback,predict)"
    )
    assert settings.token == "from-a-file"
    with pytest.raises(ValidationError, match="both API_TOKEN and API_TOKEN_FILE are set"):
        Settings(api_token="x", api_token_file=tmp_path / "token")
    with pytest.raises(ValidationError, match="API_TOKENS_FILE=.* cannot be read"):
        Settings(api_tokens_file=tmp_path / "missing")
    (tmp_path / "password").write_text("mlflow-pw\n")
    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD", raising=False)
    from serving_service.app import create_app

    create_app(Settings(api_token="x", mlflow_tracking_password_file=tmp_path / "password"))
    import os

    assert os.environ.pop("MLFLOW_TRACKING_PASSWORD") == "mlflow-pw"


async def _chunks(size: int, chunk: int = 4096) -> AsyncIterator[bytes]:
    sent = 0
    while sent < size:
        yield b" " * chunk
        sent += chunk


@pytest.mark.parametrize("path", ["/v1/predict", "/v1/feedback", "/v1/model/reload", "/nowhere"])
def test_bodies_over_the_cap_are_413_before_reading(path: str) -> None:
    stack = serving_stack(_secured(max_body_bytes=10_000))
    big = b"[" + b"0," * 6000 + b"0]"
    declared = call(stack, "POST", path, content=big, headers=CLIENT)
    assert declared.status_code == 413
    assert "MAX_BODY_BYTES=10000" in declared.json()["detail"]
    streamed = call(stack, "POST", path, content=_chunks(50_000), headers=CLIENT)
    # Routes that read a body stop at the cap; the others answer without reading it.
    reads_body = path in ("/v1/predict", "/v1/feedback")
    assert streamed.status_code == (413 if reads_body else {"/nowhere": 404}.get(path, 403))
    assert call(stack, "GET", "/health").status_code == 200


def test_host_header_check() -> None:
    stack = serving_stack(_secured(allowed_hosts="proxy, serving,localhost,127.0.0.1"))
    for host in ("proxy:5001", "serving", "LOCALHOST:443", "127.0.0.1:5001"):
        assert call(stack, "GET", "/health", headers={"Host": host}).status_code == 200, host
    evil = call(stack, "GET", "/health", headers={"Host": "evil.example:5001"})
    assert evil.status_code == 400 and "ALLOWED_HOSTS" in evil.json()["detail"]
    anything = serving_stack(_secured())
    assert call(anything, "GET", "/health", headers={"Host": "evil.example"}).status_code == 200
