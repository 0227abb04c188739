"""What the DAGs expect of each provider: the calls they make and the response fields they read.

``EXPECTATIONS`` is the consumer's side of the contract, written next to the code it describes
(``where``). ``tests/test_consumer_contracts.py`` checks each entry against the providers'
documents in ``contracts/``, and ``exchange_violations`` checks the traffic of every behaviour
run (``run_dag``): each request the DAGs sent must be listed here and valid for the provider,
and each stub response must match the provider's response schema, so the stubs cannot drift.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from tests.openapi_contracts import contract

MLFLOW = "/api/2.0/mlflow"
_VERSION_FIELDS = ("name", "version", "run_id", "status", "creation_timestamp", "aliases")
# What the pipeline reads of a dataset (POST /v1/datasets and GET /v1/datasets/{id} alike):
# the gate's outputs, and what prepare_dataset logs and run_inference uses.
_DATASET_FIELDS = (
    "dataset_id",
    "sha256",
    "n_test",
    "n_train",
    "source",
    "classes",
    "image_size",
    "channels",
)


@dataclass(frozen=True)
class Expectation:
    service: str  # stub name = provider: training | serving | mlflow
    method: str
    path: str  # the provider's path template
    status: int  # the success status the DAG code handles
    reads: tuple[str, ...]  # response fields the DAG code reads (a.b, list[].field)
    where: str  # the code that sends the request or reads the fields
    headers: tuple[str, ...] = ()  # request headers the DAG must send and the provider declare

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.service, self.method, self.path)


EXPECTATIONS = (
    Expectation(
        "training",
        "POST",
        "/v1/datasets",
        201,
        _DATASET_FIELDS,
        "datasets.prepare_dataset (+ quality_gates.PIPELINE_OUTPUTS), simple DAG",
        headers=("Idempotency-Key", "Authorization"),
    ),
    Expectation(
        "training",
        "GET",
        "/v1/datasets/{dataset_id}",
        200,
        _DATASET_FIELDS,
        "datasets.prepare_dataset with the dataset_id param (an uploaded dataset)",
    ),
    Expectation(
        "training",
        "POST",
        "/v1/train",
        202,
        ("status_url",),
        "service_operator submit_training_job / start_training; the sensor polls status_url",
        headers=("Idempotency-Key", "Authorization"),
    ),
    Expectation(
        "training", "GET", "/ready", 200, (), "pipeline.check_training_ready (503: its detail)"
    ),
    Expectation(
        "training",
        "GET",
        "/v1/jobs/{job_id}",
        200,
        (
            "job_id",
            "status",
            "error",
            "progress.epoch",
            "progress.epochs",
            "metrics.test_accuracy",
            "model_name",
            "model_version",
            "dataset_id",
        ),
        "training_jobs.poll_outcome, pipeline.fetch_model_version/validate_pipeline, simple DAG",
    ),
    Expectation(
        "training",
        "GET",
        "/v1/datasets/{dataset_id}/samples",
        200,
        ("instances", "labels"),
        "holdout.fetch_holdout_samples (pipeline.run_inference, model_management), simple DAG",
    ),
    Expectation(
        "serving",
        "POST",
        "/v1/predict",
        200,
        ("predictions", "model.version"),
        "holdout.predict_with_version (C x H x W instances, chunked), simple DAG",
        headers=("Authorization",),  # scope 'predict' (issue #20)
    ),
    Expectation(
        "serving",
        "POST",
        "/v1/model/reload",
        200,
        ("version",),
        "model_management.reload_serving_model",
        headers=("Authorization",),
    ),
    Expectation(
        "serving",
        "GET",
        "/v1/model",
        200,
        (
            "version",
            "registry",
            # the live section (issue #9)
            "live.window",
            "live.accuracy{}.feedback",
            "live.accuracy{}.correct",
            "live.accuracy{}.accuracy",
            "live.drift.version",
            "live.drift.instances",
            "live.drift.score",
            "live.drift.reference",
        ),
        "serving_health.evaluate_serving_health, live_quality.evaluate_live_quality",
    ),
    Expectation("serving", "GET", "/metrics", 200, (), "serving_health (Prometheus text)"),
    Expectation(
        "mlflow",
        "GET",
        f"{MLFLOW}/model-versions/get",
        200,
        tuple(f"model_version.{f}" for f in _VERSION_FIELDS)
        + ("model_version.tags[].key", "model_version.tags[].value"),
        "registry.get_model_version (_flatten_version)",
    ),
    Expectation(
        "mlflow",
        "GET",
        f"{MLFLOW}/model-versions/search",
        200,
        tuple(f"model_versions[].{f}" for f in _VERSION_FIELDS)
        + ("model_versions[].tags[].key", "model_versions[].tags[].value", "next_page_token"),
        "registry.search_model_versions",
    ),
    Expectation(
        "mlflow",
        "GET",
        f"{MLFLOW}/registered-models/get",
        200,
        ("registered_model.aliases[].alias", "registered_model.aliases[].version"),
        "registry.get_aliases",
    ),
    Expectation(
        "mlflow", "POST", f"{MLFLOW}/registered-models/alias", 200, (), "registry.set_alias"
    ),
    Expectation(
        "mlflow",
        "DELETE",
        f"{MLFLOW}/model-versions/delete",
        200,
        (),
        "registry.delete_model_version",
    ),
)
BY_KEY = {e.key: e for e in EXPECTATIONS}


def exchange_violations(exchanges: Iterable[dict[str, Any]]) -> list[str]:
    """Contract problems in recorded stub traffic (see ``tests/stubs/common.instrument``)."""
    problems: list[str] = []
    for exchange in exchanges:
        service, method, path = exchange["service"], exchange["method"], exchange["path"]
        provider = contract(service)
        problems += provider.request_violations(
            method,
            path,
            query=exchange.get("query"),
            headers=exchange.get("headers"),
            body=exchange.get("body"),
        )
        match = provider.find(method, path)
        if match is None:
            continue
        expectation = BY_KEY.get((service, method, match.template))
        if expectation is None:
            problems.append(
                f"{method} {match.template} on {service}: the DAGs call it but "
                "tests/consumer_expectations.py does not list it"
            )
            continue
        sent = {name.lower() for name in exchange.get("headers", {})}
        problems += [
            f"{method} {path}: the DAG did not send the {header} header"
            for header in expectation.headers
            if header.lower() not in sent
        ]
        # Injected faults stand for a proxy or a restart, not for the provider's own answers.
        if "status" in exchange and not exchange.get("fault"):
            problems += provider.response_violations(
                method, path, exchange["status"], exchange.get("response")
            )
    return problems
