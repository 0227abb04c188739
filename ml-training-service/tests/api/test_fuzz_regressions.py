"""Regression tests for bugs schemathesis found (tests/api/test_fuzz.py), one per bug."""

from __future__ import annotations

import httpx
import pytest


@pytest.mark.parametrize("path", ["/v1/train", "/v1/datasets"])
def test_body_that_is_not_utf8_is_422_not_400(authed: httpx.Client, path: str) -> None:
    # FastAPI's own answer was an undocumented 400 "There was an error parsing the body".
    response = authed.post(path, content=b"Q\xff\r]", headers={"Content-Type": "application/json"})
    assert response.status_code == 422, response.text
    assert response.json() == {"detail": "request body is not valid JSON: send UTF-8 encoded JSON"}
