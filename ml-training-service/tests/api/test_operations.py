"""Operational endpoints and the OpenAPI contract."""

from __future__ import annotations

from pathlib import Path

import httpx
from fastapi.testclient import TestClient
from support import PYPROJECT_VERSION, free_port

from training_service.app import create_app
from training_service.config import Settings


def test_health_version_ready(client: httpx.Client) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    # The running service reports the version of pyproject.toml (through the installed
    # package's metadata): a bump without `make setup` or a hard-coded version fails here.
    assert client.get("/version").json() == {
        "service": "ml-training-service",
        "version": PYPROJECT_VERSION,
    }
    assert client.get("/openapi.json").json()["info"]["version"] == PYPROJECT_VERSION
    ready = client.get("/ready")
    assert ready.status_code == 200 and ready.json() == {"status": "ready"}


def test_metrics_are_prometheus_text(client: httpx.Client) -> None:
    client.get("/health")
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert 'http_requests_total{method="GET",route="/health",status="200"}' in text
    assert 'http_request_duration_seconds_count{method="GET",route="/health",status="200"}' in text
    assert 'http_request_duration_seconds_bucket{le="0.001",method="GET",route="/health"' in text
    assert 'training_jobs{status="queued"}' in text


def test_openapi_documents_the_v1_contract(client: httpx.Client) -> None:
    spec = client.get("/openapi.json").json()
    paths = spec["paths"]
    for path in (
        "/v1/train",
        "/v1/jobs",
        "/v1/jobs/{job_id}",
        "/v1/jobs/{job_id}/cancel",
        "/v1/datasets",
        "/v1/datasets/{dataset_id}",
        "/v1/datasets/{dataset_id}/samples",
    ):
        assert path in paths, path
    train = paths["/v1/train"]["post"]
    assert train["summary"]
    assert {"202", "401", "409", "422", "429"} <= set(train["responses"])
    job_schema = spec["components"]["schemas"]["JobPublic"]["properties"]
    assert {"status", "progress", "metrics", "model_version", "run_id"} <= set(job_schema)


def test_ready_is_503_with_the_reason_when_mlflow_is_down(tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    settings = Settings(
        environment="local", mlflow_tracking_uri=dead, data_dir=tmp_path, job_executor="thread"
    )
    with TestClient(create_app(settings)) as local:
        response = local.get("/ready")
        assert response.status_code == 503
        assert dead in response.json()["detail"]
        assert "MLFLOW_TRACKING_URI" in response.json()["detail"]
        # Without API_TOKEN in local mode, mutating endpoints need no token.
        assert local.post("/v1/datasets", json={"source": "digits"}).status_code == 201
