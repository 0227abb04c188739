"""The committed openapi.json is the app's current document (the provider's contract)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = ROOT / "openapi.json"


def current_document() -> str:
    # A clean subprocess: importing the app here would set MLflow client variables (short
    # timeouts, no retries) in the test process that registers the test models.
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),
        "PYTHONPATH": str(ROOT / "src"),
        "ENVIRONMENT": "local",
    }
    done = subprocess.run(
        [sys.executable, "-m", "serving_service.openapi", "--stdout"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    return done.stdout


def test_committed_openapi_matches_the_app() -> None:
    assert COMMITTED.is_file(), "openapi.json is missing: run `make openapi`"
    assert COMMITTED.read_text() == current_document(), (
        "openapi.json differs from the app's OpenAPI document: run `make openapi` and commit it"
    )


def test_document_is_versioned_and_documents_errors() -> None:
    doc = json.loads(COMMITTED.read_text())
    paths = doc["paths"]
    assert all(
        p.startswith("/v1/") or p in {"/health", "/ready", "/version", "/metrics", "/invocations"}
        for p in paths
    ), sorted(paths)
    predict = paths["/v1/predict"]["post"]["responses"]
    assert set(predict) >= {"200", "404", "413", "422", "503"}
    # Issue #20: the scoring routes need a token with scope `predict`.
    assert {"401", "403"} <= set(predict)
    assert paths["/v1/predict"]["post"]["security"] == [{"HTTPBearer": []}]
    assert {"401", "403"} <= set(paths["/v1/feedback"]["post"]["responses"])
    # Regression: the 415 for a non-JSON body was answered but undocumented.
    assert set(paths["/invocations"]["post"]["responses"]) >= {"200", "413", "415", "422", "503"}
    assert "text/plain" in paths["/metrics"]["get"]["responses"]["200"]["content"]
    assert set(paths["/v1/model/reload"]["post"]["responses"]) >= {"200", "401", "403"}
