"""Each MLflow identity can do its work and gets 403 on the rest; no login gets 401.

Against a real `mlflow server --app-name basic-auth` with our authorization function and
the users, experiment, model and grants the stack's bootstrap creates
(infra/mlflow/mlops_mlflow_auth). What each identity may do is the table in infra/README.md.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from scripts.embedded.components import mlflow_env
from scripts.embedded.stack import Stack

MODEL = "image-classifier"
EXPERIMENT = "image-classification"
API = "/api/2.0/mlflow"


class As:
    """REST calls to MLflow as one login (or none)."""

    def __init__(self, stack: Stack, username: str | None, password: str | None = None) -> None:
        self.url = stack.cfg.mlflow_url
        self.auth: tuple[str, str] | None = None
        if username is not None:
            self.auth = (username, password or stack.cfg.mlflow_password(username))

    def call(self, method: str, path: str, body: Any = None, **params: str) -> httpx.Response:
        return httpx.request(
            method,
            f"{self.url}{path}",
            json=body,
            params=params or None,
            auth=self.auth,
            timeout=30,
        )

    def ok(self, method: str, path: str, body: Any = None, **params: str) -> Any:
        answer = self.call(method, path, body, **params)
        assert answer.status_code == 200, f"{method} {path} -> {answer.status_code}: {answer.text}"
        return answer.json()


def experiment_id(who: As) -> str:
    found = who.ok("GET", f"{API}/experiments/get-by-name", experiment_name=EXPERIMENT)
    return str(found["experiment"]["experiment_id"])


def new_version(training: As) -> str:
    """What the training service does: a run in its experiment, then a registered version."""
    run = training.ok("POST", f"{API}/runs/create", {"experiment_id": experiment_id(training)})[
        "run"
    ]["info"]
    run_id = run["run_id"]
    training.ok(
        "POST",
        f"{API}/runs/log-metric",
        {"run_id": run_id, "key": "acc", "value": 0.9, "timestamp": 0, "step": 0},
    )
    version = training.ok(
        "POST",
        f"{API}/model-versions/create",
        {"name": MODEL, "source": f"{run['artifact_uri']}/model", "run_id": run_id},
    )["model_version"]
    return str(version["version"])


def alias(who: As, name: str, version: str) -> httpx.Response:
    return who.call(
        "POST", f"{API}/registered-models/alias", {"name": MODEL, "alias": name, "version": version}
    )


@pytest.fixture(scope="module")
def version(mlflow_stack: Stack) -> str:
    return new_version(As(mlflow_stack, "training"))


def test_without_a_login_or_with_a_wrong_password_mlflow_answers_401(mlflow_stack: Stack) -> None:
    for who in (As(mlflow_stack, None), As(mlflow_stack, "serving", "not-the-password")):
        assert who.call("GET", f"{API}/registered-models/get", name=MODEL).status_code == 401
        assert who.call("POST", f"{API}/runs/create", {"experiment_id": "1"}).status_code == 401
    # The health check stays open: orchestrators and load balancers probe it.
    assert httpx.get(f"{mlflow_stack.cfg.mlflow_url}/health", timeout=10).status_code == 200


def test_training_creates_runs_registers_versions_and_moves_only_staging(
    mlflow_stack: Stack, version: str
) -> None:
    training = As(mlflow_stack, "training")
    tag = {"name": MODEL, "version": version, "key": "job_id", "value": "j1"}
    training.ok("POST", f"{API}/model-versions/set-tag", tag)
    assert alias(training, "staging", version).status_code == 200
    refused = alias(training, "production", version)
    assert refused.status_code == 403, refused.text
    assert "production" in refused.json()["message"]
    deleted = training.call(
        "DELETE", f"{API}/model-versions/delete", {"name": MODEL, "version": version}
    )
    assert deleted.status_code == 403, deleted.text
    grant = training.call(
        "POST",
        "/api/3.0/mlflow/users/permissions/grant",
        {
            "username": "serving",
            "resource_type": "registered_model",
            "resource_id": MODEL,
            "permission": "MANAGE",
        },
    )
    assert grant.status_code == 403, grant.text


def test_orchestrator_reads_moves_production_and_deletes_old_versions_only(
    mlflow_stack: Stack, version: str
) -> None:
    orchestrator = As(mlflow_stack, "orchestrator")
    model = orchestrator.ok("GET", f"{API}/registered-models/get", name=MODEL)
    assert model["registered_model"]["name"] == MODEL
    assert alias(orchestrator, "production", version).status_code == 200
    assert alias(orchestrator, "staging", version).status_code == 403
    old = new_version(As(mlflow_stack, "training"))
    orchestrator.ok("DELETE", f"{API}/model-versions/delete", {"name": MODEL, "version": old})
    refused = {
        "create a run": orchestrator.call(
            "POST", f"{API}/runs/create", {"experiment_id": experiment_id(orchestrator)}
        ),
        "tag a version": orchestrator.call(
            "POST",
            f"{API}/model-versions/set-tag",
            {"name": MODEL, "version": version, "key": "k", "value": "v"},
        ),
        "delete the model": orchestrator.call(
            "DELETE", f"{API}/registered-models/delete", {"name": MODEL}
        ),
        "grant a permission": orchestrator.call(
            "POST",
            "/api/3.0/mlflow/users/permissions/grant",
            {
                "username": "serving",
                "resource_type": "registered_model",
                "resource_id": MODEL,
                "permission": "EDIT",
            },
        ),
    }
    assert {k: v.status_code for k, v in refused.items()} == dict.fromkeys(refused, 403)


@pytest.mark.parametrize("username", ["serving", "viewer"])
def test_readers_read_everything_and_write_nothing(
    mlflow_stack: Stack, version: str, username: str
) -> None:
    reader = As(mlflow_stack, username)
    reader.ok("GET", f"{API}/registered-models/get", name=MODEL)
    reader.ok("GET", f"{API}/model-versions/get", name=MODEL, version=version)
    found = reader.ok("POST", f"{API}/runs/search", {"experiment_ids": [experiment_id(reader)]})
    assert found["runs"], "a reader must see the training runs"
    refused = {
        "create a run": reader.call(
            "POST", f"{API}/runs/create", {"experiment_id": experiment_id(reader)}
        ),
        "move an alias": alias(reader, "production", version),
        "tag a version": reader.call(
            "POST",
            f"{API}/model-versions/set-tag",
            {"name": MODEL, "version": version, "key": "k", "value": "v"},
        ),
        "create an experiment": reader.call(
            "POST", f"{API}/experiments/create", {"name": f"x-{uuid.uuid4().hex[:6]}"}
        ),
        "create a model": reader.call(
            "POST", f"{API}/registered-models/create", {"name": f"x-{uuid.uuid4().hex[:6]}"}
        ),
    }
    assert {k: v.status_code for k, v in refused.items()} == dict.fromkeys(refused, 403)


def test_bootstrap_is_idempotent_and_reads_passwords_from_files(
    mlflow_stack: Stack, tmp_path: Path
) -> None:
    """A re-run sets the password from `<VARIABLE>_FILE` (a mounted secret) and changes nothing
    else; the old password stops working at once."""
    cfg = mlflow_stack.cfg
    secret = tmp_path / "training-password"
    secret.write_text("rotated-training-password\n")
    env = {**os.environ, **mlflow_env(cfg)}
    env.pop("MLFLOW_TRAINING_PASSWORD")
    env["MLFLOW_TRAINING_PASSWORD_FILE"] = str(secret)
    python = cfg.venvs / "mlflow-server" / "bin" / "python"
    argv = [str(python), "-m", "mlops_mlflow_auth.bootstrap", "--url", cfg.mlflow_url]
    try:
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert "rotated-training-password" not in done.stdout + done.stderr
        rotated = As(mlflow_stack, "training", "rotated-training-password")
        assert experiment_id(rotated)
        old = As(mlflow_stack, "training").call("GET", f"{API}/registered-models/get", name=MODEL)
        assert old.status_code == 401
    finally:
        mlflow_stack.bootstrap_mlflow()  # back to the stack's own password
    assert experiment_id(As(mlflow_stack, "training"))
