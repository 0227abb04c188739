"""No secret of the embedded stack reaches a log, after a whole pipeline has run.

Runs on the session's stack once the lifecycle (pipeline, then model_management) has run
(the `promoted_run` fixture; this file sorts after the other tests of the folder, so their
requests are in the logs too). Every value the stack generated (its state folder's
secrets.json: the services' API token and the orchestrator's token, MLflow's admin, per-service
and viewer passwords and its session key, Airflow's JWT secret and its logins' passwords),
and the `user:password` basic-auth pairs MLflow's clients send, base64 encoded as on the wire,
is looked for in every component log (`<state>/logs/*.log`) and every Airflow task and DAG
processor log (`<state>/airflow/logs/`). A failure names the secret's key and the file, never
the value.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

from lifecycle import PromotedRun
from scripts.embedded.stack import Stack

#: Secrets every embedded stack generates; the check is not vacuous without them.
EXPECTED_KEYS = {
    "api_token",
    "orchestrator_token",
    "airflow_jwt_secret",
    "mlflow_admin_password",
    "mlflow_training_password",
    "mlflow_orchestrator_password",
    "mlflow_serving_password",
}


def generated_secrets(home: Path) -> dict[str, str]:
    """key -> value of every generated secret, plus `<key> (basic auth)` -> base64 pair."""
    values: dict[str, str] = json.loads((home / "secrets.json").read_text())
    found = dict(values)
    for key, value in values.items():
        if key.startswith("mlflow_") and key.endswith("_password"):
            user = key.removeprefix("mlflow_").removesuffix("_password")
            pair = base64.b64encode(f"{user}:{value}".encode()).decode()
            found[f"{key} (basic auth of {user})"] = pair
    return found


def log_files(home: Path) -> list[Path]:
    files = [
        *sorted((home / "logs").glob("*.log")),
        *sorted((home / "airflow" / "logs").rglob("*")),
    ]
    return [f for f in files if f.is_file()]


def test_no_generated_secret_appears_in_any_log(stack: Stack, promoted_run: PromotedRun) -> None:
    home = stack.cfg.home
    secrets = generated_secrets(home)
    missing = EXPECTED_KEYS - set(secrets)
    assert not missing, f"the stack did not generate {sorted(missing)}: the check would be blind"
    files = log_files(home)
    names = {f.name for f in files}
    assert {"training.log", "serving.log", "mlflow.log", "airflow-scheduler.log"} <= names, names
    task_logs = [f for f in files if "dag_id=mlflow_orchestration_pipeline" in str(f)]
    assert task_logs, "no task log of the pipeline run: nothing of the run would be checked"
    leaks = []
    for path in files:
        text = path.read_bytes().decode("utf-8", "replace")
        leaks += [f"{key} in {path.relative_to(home)}" for key, v in secrets.items() if v in text]
    assert not leaks, "secret values found in logs (values not shown): " + "; ".join(leaks)
