"""Every bad request gets a 4xx with a detail that says what to fix, never a 500."""

from __future__ import annotations

import httpx
import pytest

from tests.support import Service

ZEROS_8X8 = [[0.0] * 8] * 8


@pytest.mark.parametrize(
    ("body", "status", "detail"),
    [
        ({"instances": []}, 422, "empty"),
        ({}, 422, "needs 'instances'"),
        ({"instances": "image"}, 422, "list of images"),
        ({"instances": [[0.0] * 63]}, 422, "shape [1, 8, 8] or [8, 8] or flat 64; got [63]"),
        ({"instances": [[[0.0] * 7] * 8]}, 422, "got [8, 7]"),
        ({"instances": [[[0.0] * 8] * 8, [[0.0] * 8] * 7]}, 422, "same shape"),
        ({"instances": [[["a"] * 8] * 8]}, 422, "numbers"),
        ({"instances": [0.5, 0.5]}, 422, "must be an image"),
        ({"instances": [[1e39] * 64]}, 422, "non-finite"),
        ({"instances": [ZEROS_8X8] * 513}, 413, "MAX_BATCH_SIZE=512"),
        ({"instances": [ZEROS_8X8], "version": "999"}, 404, "no version '999'"),
    ],
)
def test_predict_rejects(service: Service, body: object, status: int, detail: str) -> None:
    r = httpx.post(f"{service.url}/v1/predict", json=body, timeout=30)
    assert r.status_code == status, r.text
    assert detail in r.json()["detail"]


@pytest.mark.parametrize(
    ("raw", "detail"),
    [
        (b'{"instances": [[NaN, 0.0]]}', "not valid JSON"),
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "JSON object"),
    ],
)
def test_predict_rejects_bad_json(service: Service, raw: bytes, detail: str) -> None:
    r = httpx.post(
        f"{service.url}/v1/predict", content=raw, headers={"content-type": "application/json"}
    )
    assert r.status_code == 422
    assert detail in r.json()["detail"]


@pytest.mark.parametrize(
    ("body", "status", "detail"),
    [
        ({}, 422, "exactly one of"),
        ({"inputs": [ZEROS_8X8], "instances": [ZEROS_8X8]}, 422, "exactly one of"),
        ({"inputs": []}, 422, "non-empty list"),
        ({"inputs": [[0.0] * 10]}, 422, "got [10]"),
        ({"dataframe_split": {"columns": ["a"]}}, 422, "needs 'data'"),
        ({"inputs": [[1e39] * 64]}, 422, "non-finite"),
        ({"inputs": [ZEROS_8X8] * 513}, 413, "MAX_BATCH_SIZE=512"),
    ],
)
def test_invocations_rejects(service: Service, body: object, status: int, detail: str) -> None:
    r = httpx.post(f"{service.url}/invocations", json=body)
    assert r.status_code == status, r.text
    assert detail in r.json()["detail"]


def test_invocations_rejects_non_json_with_documented_415(service: Service) -> None:
    # Regression: the 415 was answered but missing from the OpenAPI document.
    r = httpx.post(
        f"{service.url}/invocations", content=b"a,b\n1,2\n", headers={"content-type": "text/csv"}
    )
    assert r.status_code == 415, r.text
    assert "application/json" in r.json()["detail"]
    documented = httpx.get(f"{service.url}/openapi.json").json()
    assert "415" in documented["paths"]["/invocations"]["post"]["responses"]
