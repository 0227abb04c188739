"""HTTP plumbing: error detail, status handling, Bearer auth, retries, and the alert notifier."""

from __future__ import annotations

import json
import os
import pickle
from typing import Any

import pytest
import requests
from airflow.sdk.exceptions import AirflowException, AirflowFailException
from orchestration.alerts import PipelineAlertNotifier
from orchestration.findings import CheckFailed, Finding
from orchestration.service_http import (
    TRAINING_CONN_ID,
    bearer_auth,
    call_service,
    check_service_response,
    error_detail,
)

from tests.stubs.world import TOKEN, World


def _response(status: int, body: Any, content_type: str = "application/json") -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = (json.dumps(body) if content_type.endswith("json") else body).encode()
    response.headers["Content-Type"] = content_type
    response.url = "http://svc/v1/x"
    response.request = requests.Request("POST", response.url).prepare()
    return response


def test_error_detail_reads_fastapi_mlflow_and_plain_bodies() -> None:
    assert error_detail(_response(422, {"detail": "epochs must be <= 200"})) == (
        "epochs must be <= 200"
    )
    mlflow = {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "no model 'x'"}
    assert error_detail(_response(404, mlflow)) == "RESOURCE_DOES_NOT_EXIST: no model 'x'"
    assert error_detail(_response(502, "bad gateway", "text/plain")) == "bad gateway"


def test_client_errors_fail_fast_and_server_errors_stay_retryable() -> None:
    assert check_service_response(_response(200, {}))
    with pytest.raises(AirflowFailException, match=r"POST http://svc/v1/x -> HTTP 409: reused"):
        check_service_response(_response(409, {"detail": "reused"}))
    with pytest.raises(AirflowException, match="HTTP 503: restarting") as raised:
        check_service_response(_response(503, {"detail": "restarting"}))
    assert not isinstance(raised.value, AirflowFailException)


def test_bearer_auth_uses_the_password_with_or_without_login(monkeypatch: Any) -> None:
    with_login: Any = bearer_auth("any")  # HttpHook calls it as auth_type(login, password)
    request = requests.Request("POST", "http://svc/").prepare()
    assert with_login("user", "s3cret")(request).headers["Authorization"] == ("Bearer s3cret")
    monkeypatch.setenv(
        "AIRFLOW_CONN_TOKEN_ONLY", json.dumps({"conn_type": "http", "password": "t0ken"})
    )
    request = requests.Request("POST", "http://svc/").prepare()
    assert bearer_auth("token_only")()(request).headers["Authorization"] == "Bearer t0ken"


def test_call_service_retries_5xx_with_backoff_then_succeeds(stack: Any, world: World) -> None:
    world.faults["POST /v1/datasets"] = 2
    body = call_service(TRAINING_CONN_ID, "POST", "/v1/datasets", payload={}, bearer=True)
    assert body["dataset_id"] in world.datasets
    calls = world.calls("training", "POST", "/v1/datasets")
    assert len(calls) == 3
    assert calls[-1]["headers"]["authorization"] == f"Bearer {TOKEN}"


def test_call_service_raises_the_service_detail_after_the_last_attempt(
    stack: Any, world: World
) -> None:
    world.faults["GET /v1/jobs/nope"] = 10
    with pytest.raises(AirflowException, match="HTTP 503: stub fault on GET /v1/jobs/nope"):
        call_service(TRAINING_CONN_ID, "GET", "/v1/jobs/nope")
    assert len(world.calls("training", "GET", "/v1/jobs/nope")) == 3
    with pytest.raises(AirflowFailException, match="HTTP 404: job 'other' not found"):
        call_service(TRAINING_CONN_ID, "GET", "/v1/jobs/other")


class _TaskInstance:
    dag_id, run_id, task_id, try_number = "d", "r", "t", 1


def test_notifier_posts_to_the_webhook_when_configured(stack: Any, world: World) -> None:
    PipelineAlertNotifier()({"ti": _TaskInstance(), "exception": ValueError("boom")})
    assert world.alerts == [
        {
            "source": "airflow-orchestrator",
            "severity": "error",
            "dag_id": "d",
            "run_id": "r",
            "task_id": "t",
            "try_number": 1,
            "error": "boom",
            "kind": "task_failed",
            "details": {"exception_type": "ValueError"},
        }
    ]
    assert world.alert_request_ids == ["d/r"]


def test_notifier_posts_one_alert_per_finding_of_a_failed_check(stack: Any, world: World) -> None:
    error = CheckFailed(
        "serving checks failed",
        [
            Finding("live_accuracy_drop", "live accuracy low", {"accuracy": 0.5}),
            Finding("input_drift", "inputs drift", {"score": 1.2}),
        ],
    )
    assert error.alert == {"kind": "live_accuracy_drop", "details": {"accuracy": 0.5}}
    PipelineAlertNotifier()({"ti": _TaskInstance(), "exception": error})
    assert [(a["kind"], a["details"]) for a in world.alerts] == [
        ("live_accuracy_drop", {"accuracy": 0.5}),
        ("input_drift", {"score": 1.2}),
    ]
    assert {a["error"] for a in world.alerts} == {
        "serving checks failed: live accuracy low; inputs drift"
    }


def test_check_failed_fails_without_retry_and_survives_pickling() -> None:
    error = CheckFailed("gate", [Finding("quality_gate_failed", "too low", {"accuracy": 0.7})])
    assert isinstance(error, AirflowFailException)
    copy = pickle.loads(pickle.dumps(error))
    assert str(copy) == "gate: too low" and copy.findings == error.findings
    with pytest.raises(ValueError, match="at least one finding"):
        CheckFailed("gate", [])


def test_notifier_only_logs_without_a_webhook(
    stack: Any, world: World, monkeypatch: Any, caplog: Any
) -> None:
    monkeypatch.delitem(os.environ, "AIRFLOW_CONN_ALERT_WEBHOOK")
    PipelineAlertNotifier()({"ti": _TaskInstance(), "exception": ValueError("boom")})
    assert world.alerts == []
    assert "ALERT task_failed d.t failed: boom" in caplog.text
