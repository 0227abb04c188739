"""The compose stack's logins, from the passwords `make env` writes into .env.

MLflow (basic auth through the TLS proxy): no login gets 401, each service's identity gets
403 outside its work. Airflow: admin/admin is refused, the viewer cannot trigger, the operator
clears but cannot write configuration. The full matrix runs on the embedded flavour in
tests/security; this checks that compose wires the same identities with its own secrets.
Runs after the lifecycle (`promoted`), on the session's stack.
"""

from __future__ import annotations

from typing import Any

import httpx
from container_stack import ContainerStack

MODEL = "image-classifier"
DAG = "mlflow_orchestration_pipeline"


def mlflow_call(
    stack: ContainerStack, method: str, path: str, login: str | None, body: Any = None
) -> int:
    auth = None
    if login is not None:
        auth = (login, stack.variables[f"MLFLOW_{login.upper()}_PASSWORD"])
    answer = httpx.request(
        method,
        f"{stack.url('mlflow')}/api/2.0/mlflow{path}",
        json=body,
        auth=auth,
        verify=stack.tls,
        timeout=30,
    )
    return answer.status_code


def airflow_token(stack: ContainerStack, username: str, password: str) -> str | None:
    answer = stack.http.post(
        f"{stack.url('airflow')}/auth/token", json={"username": username, "password": password}
    )
    return answer.json()["access_token"] if answer.status_code < 300 else None


def test_mlflow_identities_from_env(
    container_stack: ContainerStack, promoted: dict[str, Any]
) -> None:
    version = promoted["version"]
    get_model = f"/registered-models/get?name={MODEL}"
    alias = "/registered-models/alias"
    assert mlflow_call(container_stack, "GET", get_model, None) == 401
    assert mlflow_call(container_stack, "GET", get_model, "viewer") == 200
    outcomes = {
        "serving moves production": mlflow_call(
            container_stack,
            "POST",
            alias,
            "serving",
            {"name": MODEL, "alias": "production", "version": version},
        ),
        "training moves production": mlflow_call(
            container_stack,
            "POST",
            alias,
            "training",
            {"name": MODEL, "alias": "production", "version": version},
        ),
        "viewer creates a run": mlflow_call(
            container_stack, "POST", "/runs/create", "viewer", {"experiment_id": "1"}
        ),
    }
    assert outcomes == dict.fromkeys(outcomes, 403)


def test_airflow_logins_from_env(container_stack: ContainerStack, promoted: dict[str, Any]) -> None:
    variables = container_stack.variables
    assert airflow_token(container_stack, "admin", "admin") is None
    base = f"{container_stack.url('airflow')}/api/v2"

    def status(username: str, method: str, path: str, body: Any) -> int:
        token = airflow_token(
            container_stack, username, variables[f"AIRFLOW_{username.upper()}_PASSWORD"]
        )
        assert token, f"{username} could not log in with the password from .env"
        answer = container_stack.http.request(
            method, f"{base}{path}", json=body, headers={"Authorization": f"Bearer {token}"}
        )
        return answer.status_code

    clear = f"/dags/{DAG}/clearTaskInstances"
    assert status("viewer", "GET", "/dags", None) == 200
    assert status("viewer", "POST", f"/dags/{DAG}/dagRuns", {"logical_date": None}) == 403
    assert status("viewer", "POST", clear, {"dry_run": True}) == 403
    assert status("operator", "POST", clear, {"dry_run": True}) == 200
    assert status("operator", "POST", "/variables", {"key": "k", "value": "v"}) == 403
