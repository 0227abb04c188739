"""Airflow's three logins through its REST API: admin, operator (trigger, clear), viewer.

Against a real api-server with the embedded stack's simple-auth-manager users. No DAG is
parsed here, so a 404 on a DAG's run means the request passed authorization and found no
DAG, while 403 is the role refusing it; the embedded suite drives the real pipeline as the
operator (tests/embedded/conftest.py), which shows the operator really triggers and clears.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from scripts.embedded.stack import Stack

DAG = "mlflow_orchestration_pipeline"


class Login:
    """Bearer-token calls to /api/v2 as one Airflow login."""

    def __init__(self, stack: Stack, username: str, password: str | None = None) -> None:
        self.base = stack.cfg.airflow_url
        answer = httpx.post(
            f"{self.base}/auth/token",
            json={
                "username": username,
                "password": password or stack.cfg.airflow_password_of(username),
            },
            timeout=60,
        )
        self.status = answer.status_code
        token = answer.json().get("access_token") if answer.status_code < 300 else None
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}

    def call(self, method: str, path: str, body: Any = None) -> int:
        answer = httpx.request(
            method, f"{self.base}/api/v2{path}", json=body, headers=self.headers, timeout=60
        )
        return answer.status_code


def writes(login: Login, name: str) -> dict[str, int]:
    """The status of each configuration write only an admin (or Airflow's "op") may make."""
    return {
        "trigger": login.call("POST", f"/dags/{DAG}/dagRuns", {"logical_date": None}),
        "clear": login.call("POST", f"/dags/{DAG}/clearTaskInstances", {"dry_run": True}),
        "variable": login.call("POST", "/variables", {"key": name, "value": "x"}),
        "pool": login.call("POST", "/pools", {"name": name, "slots": 1}),
        "connection": login.call(
            "POST", "/connections", {"connection_id": name, "conn_type": "http"}
        ),
    }


@pytest.fixture(scope="module")
def name() -> str:
    return f"security-{uuid.uuid4().hex[:8]}"


def test_a_wrong_password_gets_no_token(airflow_stack: Stack) -> None:
    assert Login(airflow_stack, "viewer", "not-the-password").status == 401
    assert Login(airflow_stack, "admin", "admin").status == 401  # no admin/admin here


def test_the_viewer_reads_and_cannot_trigger_or_clear(airflow_stack: Stack, name: str) -> None:
    viewer = Login(airflow_stack, "viewer")
    assert viewer.call("GET", "/dags") == 200
    assert viewer.call("GET", "/importErrors") == 200
    assert writes(viewer, name) == dict.fromkeys(
        ("trigger", "clear", "variable", "pool", "connection"), 403
    )


def test_the_operator_triggers_and_clears_but_changes_no_configuration(
    airflow_stack: Stack, name: str
) -> None:
    operator = Login(airflow_stack, "operator")
    assert operator.call("GET", "/dags") == 200
    # Past authorization (404: this api-server has parsed no DAG), unlike the viewer's 403.
    assert writes(operator, name) == {
        "trigger": 404,
        "clear": 404,
        "variable": 403,
        "pool": 403,
        "connection": 403,
    }
    assert (
        operator.call(
            "PATCH", "/connections/mlflow", {"connection_id": "mlflow", "conn_type": "http"}
        )
        == 403
    )


def test_the_admin_changes_configuration(airflow_stack: Stack, name: str) -> None:
    admin = Login(airflow_stack, airflow_stack.cfg.airflow_user)
    made = writes(admin, name)
    assert made == {"trigger": 404, "clear": 404, "variable": 201, "pool": 201, "connection": 201}
    for path in (f"/variables/{name}", f"/pools/{name}", f"/connections/{name}"):
        assert admin.call("DELETE", path) == 204
