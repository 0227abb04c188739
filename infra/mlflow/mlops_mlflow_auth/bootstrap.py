"""Create this stack's MLflow users, experiment, registered model and grants; safe to re-run.

`python -m mlops_mlflow_auth.bootstrap [--url URL] [--wait SECONDS]`, as the admin
(MLFLOW_AUTH_ADMIN_PASSWORD). Each run brings MLflow to the state identities.py describes:
a missing user is created and an existing one gets the password from the environment (so a
rotated secret takes effect on the next start), the experiment and the registered model are
created when missing (so no service becomes their MANAGE owner by creating them), and every
grant is set to the permission listed. Standard library only; no secret is ever printed.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from . import identities as ids


class BootstrapError(RuntimeError):
    """MLflow refused a bootstrap call; the message names the call and MLflow's answer."""


class AdminClient:
    """JSON calls to MLflow's REST API as the admin user."""

    def __init__(self, url: str, password: str) -> None:
        self.url = url.rstrip("/")
        token = base64.b64encode(f"{ids.ADMIN}:{password}".encode()).decode()
        self.headers = {"Authorization": f"Basic {token}", "Content-Type": "application/json"}

    def call(self, method: str, path: str, body: Any = None, **query: str) -> tuple[int, Any]:
        url = f"{self.url}{path}" + (f"?{urllib.parse.urlencode(query)}" if query else "")
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(url, data=data, method=method, headers=self.headers)
        try:
            with urllib.request.urlopen(req, timeout=30) as answer:
                status, raw = answer.status, answer.read()
        except urllib.error.HTTPError as exc:
            status, raw = exc.code, exc.read()
        try:
            return status, json.loads(raw) if raw else {}
        except ValueError:
            return status, {"message": raw.decode(errors="replace")[:300]}

    def ok(self, method: str, path: str, body: Any = None, **query: str) -> Any:
        status, answer = self.call(method, path, body, **query)
        if status == 401:
            raise BootstrapError(
                "MLflow refused the admin login: MLFLOW_AUTH_ADMIN_PASSWORD differs from the "
                "password the admin user was created with (rotate it with the update-password API)"
            )
        if status >= 300:
            raise BootstrapError(f"{method} {path} -> {status}: {answer.get('message', answer)}")
        return answer


def wait_healthy(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{url.rstrip('/')}/health", timeout=5) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            raise BootstrapError(f"MLflow at {url} not healthy within {timeout:.0f} s")
        time.sleep(1)


def ensure_user(client: AdminClient, username: str, password: str) -> str:
    status, _ = client.call("GET", "/api/2.0/mlflow/users/get", username=username)
    body = {"username": username, "password": password}
    if status == 200:
        client.ok("PATCH", "/api/2.0/mlflow/users/update-password", body)
        return "password set"
    client.ok("POST", "/api/2.0/mlflow/users/create", body)
    return "created"


def ensure_experiment(client: AdminClient, name: str) -> str:
    path = "/api/2.0/mlflow/experiments/get-by-name"
    status, answer = client.call("GET", path, experiment_name=name)
    if status == 200:
        return str(answer["experiment"]["experiment_id"])
    created = client.ok("POST", "/api/2.0/mlflow/experiments/create", {"name": name})
    return str(created["experiment_id"])


def ensure_model(client: AdminClient, name: str) -> None:
    status, _ = client.call("GET", "/api/2.0/mlflow/registered-models/get", name=name)
    if status != 200:
        client.ok("POST", "/api/2.0/mlflow/registered-models/create", {"name": name})


def grant(client: AdminClient, username: str, kind: str, resource: str, permission: str) -> None:
    """Set one grant to `permission`, replacing whatever grant was there."""
    body = {"username": username, "resource_type": kind, "resource_id": resource}
    grant_path = "/api/3.0/mlflow/users/permissions/grant"
    status, _ = client.call("POST", grant_path, {**body, "permission": permission})
    if status >= 300:
        client.call("POST", "/api/3.0/mlflow/users/permissions/revoke", body)
        client.ok("POST", grant_path, {**body, "permission": permission})


def bootstrap(url: str, env: dict[str, str]) -> list[str]:
    """Bring MLflow to the described state; returns one line per step (no secrets)."""
    admin_password = ids.secret("MLFLOW_AUTH_ADMIN_PASSWORD", env)
    if not admin_password:
        raise BootstrapError("set MLFLOW_AUTH_ADMIN_PASSWORD (or MLFLOW_AUTH_ADMIN_PASSWORD_FILE)")
    client = AdminClient(url, admin_password)
    done = []
    experiment_id = ensure_experiment(client, ids.experiment_name())
    ensure_model(client, ids.model_name())
    done.append(
        f"experiment {ids.experiment_name()!r} ({experiment_id}), model {ids.model_name()!r}"
    )
    for identity in ids.identities().values():
        password = ids.secret(identity.password_variable, env)
        if not password:
            raise BootstrapError(
                f"set {identity.password_variable} (or {identity.password_variable}_FILE) "
                f"for the MLflow user {identity.username!r}"
            )
        state = ensure_user(client, identity.username, password)
        if identity.experiment_permission:
            grant(
                client,
                identity.username,
                "experiment",
                experiment_id,
                identity.experiment_permission,
            )
        if identity.model_permission:
            grant(
                client,
                identity.username,
                "registered_model",
                ids.model_name(),
                identity.model_permission,
            )
        done.append(f"user {identity.username!r}: {state}")
    return done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mlops_mlflow_auth.bootstrap", description=__doc__
    )
    default_url = f"http://127.0.0.1:{os.environ.get('MLFLOW_PORT', '5000')}"
    parser.add_argument("--url", default=os.environ.get("MLFLOW_AUTH_BOOTSTRAP_URL", default_url))
    parser.add_argument("--wait", type=float, default=0.0, help="seconds to wait for /health")
    args = parser.parse_args(argv)
    try:
        if args.wait:
            wait_healthy(args.url, args.wait)
        for line in bootstrap(args.url, dict(os.environ)):
            print(f"mlflow-auth: {line}", flush=True)
    except BootstrapError as exc:
        print(f"mlflow-auth: bootstrap failed: {exc}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
