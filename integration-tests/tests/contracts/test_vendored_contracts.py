"""The orchestrator's vendored OpenAPI documents equal the providers' committed ones.

``airflow-orchestrator/contracts/<service>.openapi.json`` is what the orchestrator's consumer
contract tests check its DAGs against; ``<service>/openapi.json`` is what the service exports
(``python3 scripts/export_openapi.py``). A provider change that is exported but not vendored
would let the consumer tests pass against a stale contract: this test catches it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
PROVIDERS = ("ml-training-service", "ml-serving-service")
REFRESH = "run `python3 scripts/export_openapi.py` at the repository root and commit the files"


@pytest.mark.parametrize("service", PROVIDERS)
def test_vendored_copy_equals_the_providers_document(service: str) -> None:
    provided = ROOT / service / "openapi.json"
    vendored = ROOT / "airflow-orchestrator" / "contracts" / f"{service}.openapi.json"
    assert provided.is_file(), f"{provided.relative_to(ROOT)} is missing: {REFRESH}"
    assert vendored.is_file(), f"{vendored.relative_to(ROOT)} is missing: {REFRESH}"
    assert vendored.read_text() == provided.read_text(), (
        f"{vendored.relative_to(ROOT)} differs from {provided.relative_to(ROOT)}: {REFRESH}"
    )
    document = json.loads(provided.read_text())
    assert document["info"]["title"] == service
