"""Schemathesis against the real service: no 5xx and no answer outside the documented schema.

The service runs as deployed (`python -m training_service`: uvicorn on 127.0.0.1, the
session's real `mlflow server` behind it, bearer token set) and schemathesis generates
requests for every operation of the committed openapi.json (test_openapi_document proves it
is the app's document), valid and invalid, and runs all its checks on each answer: no server
errors, documented status codes, content types, headers and response schemas, and rejection
of schema-violating input. `FUZZ_EXAMPLES` bounds the examples per operation: small in
`make test`, large in `make fuzz`.

Training is not fuzzed into real jobs: this instance has its own DATA_DIR and
`MAX_QUEUED_JOBS=0`, so every valid `POST /v1/train` gets the documented 429 (the queue check
comes before any dataset or job is made) and hundreds of examples start no training. Jobs
are never queued here, so `JOB_EXECUTOR=thread` saves spawning an idle torch worker process.
Everything before the queue (auth, validation, idempotency lookup) is exercised for real.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance
from support import AUTH, ROOT, ServiceProcess

FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "20"))

# Valid training requests are answered 429 on purpose (see above), which this check would
# report as "valid data rejected"; every other built-in check runs.
EXCLUDED_CHECKS = [positive_data_acceptance]

schema = schemathesis.openapi.from_path(ROOT / "openapi.json")


@pytest.fixture(scope="module")
def fuzz_service(mlflow_uri: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    data_dir: Path = tmp_path_factory.mktemp("fuzz-data")
    process = ServiceProcess(
        data_dir,
        {"MLFLOW_TRACKING_URI": mlflow_uri, "MAX_QUEUED_JOBS": "0", "JOB_EXECUTOR": "thread"},
        data_dir.parent / "fuzz-service.log",
    ).start()
    try:
        yield process.url
    finally:
        process.stop()


@schema.parametrize()
@settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    database=None,  # no .hypothesis/ directory in the subtree
    suppress_health_check=list(HealthCheck),
)
def test_api_conforms_to_its_schema(case: schemathesis.Case, fuzz_service: str) -> None:
    case.call_and_validate(
        base_url=fuzz_service, headers=AUTH, excluded_checks=EXCLUDED_CHECKS, timeout=60
    )
