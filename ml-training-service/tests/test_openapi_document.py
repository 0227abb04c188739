"""The committed openapi.json is the app's current document (the provider's contract)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from support import ROOT

COMMITTED = ROOT / "openapi.json"


def current_document() -> str:
    # A clean subprocess: the developer's API_TOKEN or other settings must not matter.
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),
        "PYTHONPATH": str(ROOT / "src"),
        "ENVIRONMENT": "local",
    }
    done = subprocess.run(
        [sys.executable, "-m", "training_service.openapi", "--stdout"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    return done.stdout


def test_committed_openapi_matches_the_app() -> None:
    assert COMMITTED.is_file(), "openapi.json is missing: run `make openapi` and commit it"
    assert COMMITTED.read_text() == current_document(), (
        "openapi.json differs from the app's OpenAPI document: run `make openapi` and commit it"
    )


def test_document_states_every_error_answer() -> None:
    doc = json.loads(COMMITTED.read_text())
    paths = doc["paths"]
    train = paths["/v1/train"]["post"]["responses"]
    assert {"202", "401", "409", "422", "429"} <= set(train)
    cancel = paths["/v1/jobs/{job_id}/cancel"]["post"]["responses"]
    assert {"200", "202", "401", "404", "409", "422"} <= set(cancel)
    assert "503" in paths["/ready"]["get"]["responses"]
    error_ref = {"$ref": "#/components/schemas/ErrorResponse"}
    # Every 4xx/5xx answer is the service's {"detail": str}, not FastAPI's default list body.
    for path, operations in paths.items():
        for method, operation in operations.items():
            for code, answer in operation["responses"].items():
                if code.startswith(("4", "5")):
                    schema = answer["content"]["application/json"]["schema"]
                    assert schema == error_ref, (method, path, code)
    assert "HTTPValidationError" not in doc["components"]["schemas"]
