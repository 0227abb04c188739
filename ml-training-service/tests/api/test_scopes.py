"""Scoped tokens and the request guard on the real service (API_TOKEN plus two named tokens
of one scope each, see conftest.py): 401 without a configured token, 403 naming the missing
scope, GETs open, a body over MAX_BODY_BYTES refused unread, token values never logged."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from support import AUTH, SCOPED_TOKENS, TOKEN, ServiceProcess


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_a_train_token_creates_datasets_and_cannot_cancel(client: httpx.Client) -> None:
    train = bearer(SCOPED_TOKENS["train"])
    created = client.post("/v1/datasets", json={"source": "digits"}, headers=train)
    assert created.status_code == 201, created.text
    refused = client.post("/v1/jobs/job-none/cancel", headers=train)
    assert refused.status_code == 403
    assert refused.json()["detail"] == (
        "this token lacks scope 'admin' (needed for POST /v1/jobs/job-none/cancel)"
    )


def test_an_admin_token_cancels_but_cannot_train(client: httpx.Client) -> None:
    admin = bearer(SCOPED_TOKENS["admin"])
    refused = client.post("/v1/train", json={"epochs": 1}, headers=admin)
    assert refused.status_code == 403
    assert "scope 'train' (needed for POST /v1/train)" in refused.json()["detail"]
    refused = client.post("/v1/datasets", json={"source": "digits"}, headers=admin)
    assert refused.status_code == 403
    # Past the token check: the job is unknown.
    assert client.post("/v1/jobs/job-none/cancel", headers=admin).status_code == 404
    assert client.post("/v1/jobs/job-none/cancel", headers=AUTH).status_code == 404


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer tökén".encode(),  # UTF-8 bytes on the wire
        "Bearer tökén".encode("latin-1"),
        b"Bearer \xff\xfe\x80",
        ("Bearer " + TOKEN + "é").encode(),
    ],
)
def test_a_token_that_is_not_ascii_is_401_never_500(
    client: httpx.Client, authorization: bytes
) -> None:
    headers = httpx.Headers([(b"Authorization", authorization)])
    response = client.post("/v1/jobs/job-none/cancel", headers=headers)
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == "Bearer"
    assert client.get("/health").status_code == 200


def test_reading_stays_open(client: httpx.Client) -> None:
    for path in ("/health", "/version", "/v1/jobs", "/metrics"):
        assert client.get(path).status_code == 200, path


@pytest.fixture()
def raw(service: ServiceProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=service.url, timeout=30, headers=AUTH) as http:
        yield http


def test_a_body_over_max_body_bytes_is_413_before_it_is_read(raw: httpx.Client) -> None:
    big = b'{"source": "digits", "pad": "' + b"x" * (1 << 20) + b'"}'
    response = raw.post("/v1/train", content=big, headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert "MAX_BODY_BYTES=1,048,576" in response.json()["detail"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: chunked, refused mid-stream
        yield b'{"epochs": 1, "pad": "'
        for _ in range(64):
            yield b"x" * 65536
        yield b'"}'

    response = raw.post("/v1/train", content=chunks(), headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert "MAX_BODY_BYTES" in response.json()["detail"]
    assert raw.get("/health").status_code == 200


def test_the_startup_log_names_tokens_and_scopes_never_values(service: ServiceProcess) -> None:
    log = service.log_path.read_text()
    assert "api_token (admin,train), trainer (train), janitor (admin)" in log
    for secret in (TOKEN, *SCOPED_TOKENS.values()):
        assert secret not in log


def test_openapi_documents_401_and_403_on_each_protected_route(client: httpx.Client) -> None:
    document = client.get("/openapi.json").json()
    assert "HTTPBearer" in document["components"]["securitySchemes"]
    for path, scope in [
        ("/v1/datasets", "train"),
        ("/v1/train", "train"),
        ("/v1/jobs/{job_id}/cancel", "admin"),
    ]:
        post = document["paths"][path]["post"]
        assert {"401", "403"} <= set(post["responses"]), path
        assert scope in post["responses"]["403"]["description"], path
        assert post["security"] == [{"HTTPBearer": []}], path
