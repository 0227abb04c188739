"""Settings: defaults from the contract, and refusing to start without a token."""

from __future__ import annotations

import subprocess
import sys

import pytest
from pydantic import ValidationError
from support import ROOT

from training_service.config import Settings


def test_defaults_follow_the_contract(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "MODEL_NAME",
        "EXPERIMENT",
        "MAX_CONCURRENT_JOBS",
        "MAX_QUEUED_JOBS",
        "PORT",
        "LOG_FORMAT",
    ):
        monkeypatch.delenv(name, raising=False)
    settings = Settings(api_token="t")
    assert settings.model_name == "image-classifier"
    assert settings.experiment == "image-classification"
    assert settings.max_concurrent_jobs == 1 and settings.max_queued_jobs == 8
    assert settings.port == 5002 and settings.environment == "production"
    assert settings.log_format == "json"


def test_token_required_outside_local(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("API_TOKEN", raising=False)
    monkeypatch.delenv("ENVIRONMENT", raising=False)
    with pytest.raises(ValidationError, match="API_TOKEN is not set"):
        Settings()
    assert Settings(environment="local").api_token is None


def start_with(**env: str) -> subprocess.CompletedProcess[str]:
    """`python -m training_service` with only these variables (besides PATH and PYTHONPATH)."""
    return subprocess.run(
        [sys.executable, "-m", "training_service"],
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT / "src"), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_service_refuses_to_start_without_token() -> None:
    result = start_with(ENVIRONMENT="production")
    assert result.returncode == 2
    assert "API_TOKEN is not set" in result.stderr
    assert "ENVIRONMENT=local" in result.stderr


def test_service_refuses_an_unknown_log_format() -> None:
    result = start_with(ENVIRONMENT="local", LOG_FORMAT="xml")
    assert result.returncode == 2
    assert "LOG_FORMAT: Input should be 'json' or 'text'" in result.stderr


def test_token_is_a_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("API_TOKEN", raising=False)
    settings = Settings(api_token="s3cret")
    assert settings.token == "s3cret"
    assert "s3cret" not in repr(settings) and "s3cret" not in str(settings.model_dump())
    assert Settings(environment="local").token is None


def test_mlflow_client_bounds_reach_the_processes_that_call_mlflow(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "3")  # MLflow's own name
    settings = Settings(api_token="t")
    assert settings.mlflow_client_environment == {
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
        "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
        "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "3",
    }
    from mlflow import environment_variables  # the names are MLflow's, not ours

    assert all(hasattr(environment_variables, name) for name in settings.mlflow_client_environment)
    assert settings.shutdown_grace_seconds == 20
    with pytest.raises(ValidationError, match="mlflow_http_request_timeout"):
        Settings(api_token="t", mlflow_http_request_timeout=0)
