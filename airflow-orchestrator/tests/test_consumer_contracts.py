"""Consumer contracts: what the DAGs send and read, against the providers' vendored documents.

The documents are in ``contracts/`` (see README, "Contracts"). These tests check the consumer's
expectations statically; the ``run_dag`` fixture checks the real traffic of every behaviour run.
The mutation tests break a copy of a document the way a provider change would, and show that
the checks report it.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from openapi_spec_validator import validate

from tests.consumer_expectations import EXPECTATIONS, MLFLOW, Expectation, exchange_violations
from tests.openapi_contracts import DOCUMENTS, Contract, contract, load_document
from tests.stubs.serving_app import live_section
from tests.stubs.world import TOKEN, World


@pytest.mark.parametrize("service", sorted(DOCUMENTS))
def test_vendored_documents_are_valid_openapi(service: str) -> None:
    validate(load_document(service))


def _live_schema(provider: Contract) -> dict[str, Any]:
    """The schema of GET /v1/model's live section in the provider's vendored document."""
    operation = provider.operation("GET", "/v1/model")
    assert operation is not None
    spec = provider.response_spec(operation, 200)
    assert spec is not None
    model_info = provider.resolve(provider.json_schema(spec) or {})
    return provider.resolve(model_info["properties"]["live"])


def test_live_section_holds_the_fields_the_monitor_reads() -> None:
    provider = contract("serving")
    [expectation] = [e for e in EXPECTATIONS if e.key == ("serving", "GET", "/v1/model")]
    assert any(f.startswith("live.") for f in expectation.reads)
    assert provider.missing_fields("GET", "/v1/model", 200, expectation.reads) == []
    # A provider that renames a field the monitor reads is reported.
    broken = Contract(copy.deepcopy(provider.document))
    drift = broken.resolve(_live_schema(broken)["properties"]["drift"])
    for branch in [drift, *drift.get("anyOf", [])]:
        broken.resolve(branch).get("properties", {}).pop("score", None)
    assert broken.missing_fields("GET", "/v1/model", 200, ("live.drift.score",)) == [
        "GET /v1/model (ml-serving-service): response field 'live.drift.score' is not in the "
        "200 schema"
    ]


def test_stub_live_section_matches_the_providers_schema() -> None:
    world = World(serving_version="3")
    world.set_live_accuracy("3", feedback=4, correct=3)
    world.set_live_accuracy("2", feedback=0, correct=0)
    world.set_input_drift(None, instances=0)
    provider = contract("serving")
    schema = _live_schema(provider)
    live = live_section(world)
    assert provider.schema_errors(schema, live) == []
    assert provider.schema_errors(schema, live_section(World())) == []  # nothing loaded yet
    live["drift"]["score"] = "high"
    assert provider.schema_errors(schema, live) != []


@pytest.mark.parametrize("expectation", EXPECTATIONS, ids=lambda e: f"{e.method} {e.path}")
def test_provider_serves_every_call_and_field_the_dags_use(expectation: Expectation) -> None:
    provider = contract(expectation.service)
    operation = provider.operation(expectation.method, expectation.path)
    assert operation is not None, f"{expectation.method} {expectation.path} not in {provider.title}"
    missing = provider.missing_fields(
        expectation.method, expectation.path, expectation.status, expectation.reads
    )
    assert missing == []
    for header in expectation.headers:
        assert provider.declares_header(operation, header), (
            f"{provider.title} does not declare {header} on {expectation.method} {expectation.path}"
        )


def test_dag_holdout_param_fits_the_providers_sample_limit() -> None:
    samples = contract("training").operation("GET", "/v1/datasets/{dataset_id}/samples")
    assert samples is not None
    [limit] = [p for p in samples["parameters"] if p["name"] == "limit"]
    assert limit["schema"]["maximum"] >= 1024  # mlflow_orchestration_pipeline's holdout_samples


# -- recorded traffic: one good exchange per provider, then the same with a broken document ---
def _train_exchange(**changes: Any) -> dict[str, Any]:
    exchange = {
        "service": "training",
        "method": "POST",
        "path": "/v1/train",
        "query": {},
        "headers": {"idempotency-key": "manual__1", "authorization": f"Bearer {TOKEN}"},
        "body": {"dataset_id": "abc", "epochs": 3, "register": True},
        "status": 202,
        "response": {"job_id": "j1", "status": "queued", "status_url": "/v1/jobs/j1"},
    }
    return {**exchange, **changes}


def _job_exchange() -> dict[str, Any]:
    return {
        "service": "training",
        "method": "GET",
        "path": "/v1/jobs/j1",
        "query": {},
        "headers": {},
        "body": None,
        "status": 404,
        "response": {"detail": "job 'j1' not found"},
    }


def test_good_exchanges_pass() -> None:
    assert exchange_violations([_train_exchange(), _job_exchange()]) == []


def test_request_body_outside_the_schema_is_reported() -> None:
    problems = exchange_violations([_train_exchange(body={"epochs": 0, "typo": 1})])
    assert any("body epochs" in p and "minimum" in p for p in problems), problems
    assert any("'typo' was unexpected" in p for p in problems), problems


def test_missing_headers_and_bearer_are_reported() -> None:
    problems = exchange_violations([_train_exchange(headers={})])
    assert any("did not send the Idempotency-Key header" in p for p in problems), problems
    assert any("declares Bearer security; no Bearer sent" in p for p in problems), problems


def test_stub_response_that_drifts_from_the_provider_is_reported() -> None:
    problems = exchange_violations([_train_exchange(response={"job_id": "j1"})])
    assert any("'status' is a required property" in p for p in problems), problems
    problems = exchange_violations([_train_exchange(status=200)])
    assert any("status 200 is not documented" in p for p in problems), problems


def test_calls_missing_from_the_expectations_are_reported() -> None:
    exchange = {**_job_exchange(), "path": "/v1/jobs", "status": 200, "response": {"jobs": []}}
    problems = exchange_violations([exchange])
    assert any("does not list it" in p for p in problems), problems


def _broken(service: str) -> tuple[Contract, dict[str, Any]]:
    document = load_document(service)
    return Contract(document), document


def test_renamed_path_breaks_the_contract() -> None:
    provider, document = _broken("training")
    document["paths"]["/v1/training-jobs"] = document["paths"].pop("/v1/train")
    body = _train_exchange()
    problems = provider.request_violations("POST", "/v1/train", body=body["body"])
    assert problems == [
        "POST /v1/train (ml-training-service): no such operation in the provider's document"
    ]


def test_new_required_request_field_breaks_the_contract() -> None:
    provider, document = _broken("training")
    schema = document["components"]["schemas"]["TrainRequest"]
    schema["properties"]["experiment"] = {"type": "string"}
    schema["required"] = ["experiment"]
    exchange = _train_exchange()
    problems = provider.request_violations(
        "POST", "/v1/train", headers=exchange["headers"], body=exchange["body"]
    )
    assert any("'experiment' is a required property" in p for p in problems), problems


def test_removed_response_field_the_dag_reads_breaks_the_contract() -> None:
    provider, document = _broken("training")
    job = document["components"]["schemas"]["JobPublic"]
    del job["properties"]["model_version"]
    job["required"].remove("model_version")
    [expectation] = [e for e in EXPECTATIONS if e.path == "/v1/jobs/{job_id}"]
    problems = provider.missing_fields("GET", expectation.path, 200, expectation.reads)
    assert problems == [
        "GET /v1/jobs/{job_id} (ml-training-service): response field 'model_version' "
        "is not in the 200 schema"
    ]


def test_nested_field_in_a_list_is_checked() -> None:
    provider, document = _broken("mlflow")
    del document["components"]["schemas"]["ModelVersionTag"]["properties"]["value"]
    problems = provider.missing_fields(
        "GET", f"{MLFLOW}/model-versions/search", 200, ("model_versions[].tags[].value",)
    )
    assert len(problems) == 1 and "model_versions[].tags[].value" in problems[0]


def test_renamed_idempotency_header_and_new_security_break_the_contract() -> None:
    provider, document = _broken("training")
    train = document["paths"]["/v1/train"]["post"]
    train["parameters"][0]["name"] = "x-request-key"
    assert not provider.declares_header(train, "Idempotency-Key")
    # The sensor polls jobs without a token: a provider that starts requiring one breaks it.
    document["paths"]["/v1/jobs/{job_id}"]["get"]["security"] = [{"HTTPBearer": []}]
    problems = provider.request_violations("GET", "/v1/jobs/j1", headers={})
    assert problems == [
        "GET /v1/jobs/j1 (ml-training-service): the provider declares Bearer security; "
        "no Bearer sent"
    ]


def test_query_parameters_are_typed_and_bounded() -> None:
    samples = "/v1/datasets/d1/samples"
    provider = contract("training")
    assert provider.request_violations("GET", samples, query={"split": "test", "limit": "50"}) == []
    problems = provider.request_violations("GET", samples, query={"split": "dev", "limit": "0"})
    assert len(problems) == 2, problems
