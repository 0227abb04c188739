"""No secret of the compose stack reaches a container's log, after a whole pipeline has run.

Runs on the session's container stack once the pipeline and model_management have run
through Airflow (the `promoted` fixture; this file sorts after the other tests of the folder,
so their requests are in the logs too). Every secret `make env` generates (each empty `KEY=`
of .env.example: the services' tokens, MLflow's and Airflow's passwords, the JWT secret, the
Fernet key, ...; this stack's values are fresh ones) is looked for in the `docker logs` of
every container, and MLflow's basic-auth pairs base64 encoded as on the wire. A failure names
the key and the container, never the value.
"""

from __future__ import annotations

import base64
from typing import Any

from container_stack import ENV_EXAMPLE, ContainerStack

#: .env keys of MLflow logins -> the user name they log in as.
MLFLOW_LOGINS = {
    "MLFLOW_ADMIN_PASSWORD": "admin",
    "MLFLOW_TRAINING_PASSWORD": "training",
    "MLFLOW_ORCHESTRATOR_PASSWORD": "orchestrator",
    "MLFLOW_SERVING_PASSWORD": "serving",
    "MLFLOW_VIEWER_PASSWORD": "viewer",
}


def generated_keys() -> list[str]:
    """The keys `make env` fills with a random secret: the empty `KEY=` lines."""
    lines = ENV_EXAMPLE.read_text().splitlines()
    return [line[:-1] for line in lines if line.endswith("=") and not line.startswith("#")]


def test_no_generated_secret_appears_in_any_container_log(
    container_stack: ContainerStack, promoted: dict[str, Any]
) -> None:
    keys = generated_keys()
    assert {"ORCHESTRATOR_TOKEN", "AIRFLOW_JWT_SECRET", "MLFLOW_ADMIN_PASSWORD"} <= set(keys)
    secrets = {key: container_stack.variables[key] for key in keys}
    for key, user in MLFLOW_LOGINS.items():
        if key in secrets:
            pair = f"{user}:{secrets[key]}".encode()
            secrets[f"{key} (basic auth)"] = base64.b64encode(pair).decode()
    assert {"training", "serving", "mlflow", "airflow"} <= set(container_stack.containers)
    leaks = []
    for name, container in container_stack.containers.items():
        raw = container.get_wrapped_container().logs(timestamps=False)
        text = bytes(raw).decode(errors="replace")
        leaks += [f"{key} in the log of {name}" for key, v in secrets.items() if v and v in text]
    assert not leaks, "secret values found in container logs (values not shown): " + "; ".join(
        leaks
    )
