"""Who talks to MLflow in this stack, and the most each identity may do.

One user per service, plus a read-only login for people. MLflow's own permissions (READ,
EDIT, MANAGE per experiment and per registered model) are granted by `bootstrap`; what
MLflow cannot say (which alias an identity may move, that a reader never writes) is
enforced by `policy`. Passwords come from the environment, or from a file named by the
same variable with `_FILE` appended (as Docker and Kubernetes mount secrets).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

ADMIN = "admin"
TRAINING = "training"
ORCHESTRATOR = "orchestrator"
SERVING = "serving"
VIEWER = "viewer"


@dataclass(frozen=True)
class Identity:
    """One MLflow user: its password variable and what it may do."""

    username: str
    password_variable: str
    # MLflow permission on the experiment and on the registered model (None: the default, READ).
    experiment_permission: str | None
    model_permission: str | None
    # Aliases this identity may set or delete; everything else about aliases is refused.
    aliases: frozenset[str]
    # Writes (anything but a read) this identity may send; None: what MLflow's permissions allow.
    writes: frozenset[str] | None


def staging_alias() -> str:
    return os.environ.get("MLFLOW_AUTH_STAGING_ALIAS", "staging")


def production_alias() -> str:
    return os.environ.get("MLFLOW_AUTH_PRODUCTION_ALIAS", "production")


def experiment_name() -> str:
    return os.environ.get("MLFLOW_AUTH_EXPERIMENT", "image-classification")


def model_name() -> str:
    return os.environ.get("MLFLOW_AUTH_MODEL_NAME", "image-classifier")


# Write endpoints, by the path after /api/<version>/mlflow/ (see policy.endpoint).
ALIAS = "registered-models/alias"
DELETE_VERSION = "model-versions/delete"


def identities() -> dict[str, Identity]:
    """Every identity but the admin (MLflow's own superuser), by username."""
    staging, production = staging_alias(), production_alias()
    none: frozenset[str] = frozenset()
    return {
        TRAINING: Identity(
            TRAINING, "MLFLOW_TRAINING_PASSWORD", "EDIT", "EDIT", frozenset({staging}), None
        ),
        ORCHESTRATOR: Identity(
            ORCHESTRATOR,
            "MLFLOW_ORCHESTRATOR_PASSWORD",
            None,
            "MANAGE",
            frozenset({production}),
            frozenset({ALIAS, DELETE_VERSION}),
        ),
        SERVING: Identity(SERVING, "MLFLOW_SERVING_PASSWORD", None, None, none, none),
        VIEWER: Identity(VIEWER, "MLFLOW_VIEWER_PASSWORD", None, None, none, none),
    }


def guarded_aliases() -> dict[str, str]:
    """alias -> the one identity (besides the admin) that may move it."""
    return {alias: i.username for i in identities().values() for alias in i.aliases}


def secret(variable: str, env: dict[str, str] | None = None) -> str | None:
    """A secret from `variable`, or read from the file `variable_FILE` names."""
    env = dict(os.environ) if env is None else env
    if env.get(variable):
        return env[variable]
    path = env.get(f"{variable}_FILE")
    if path:
        with open(path, encoding="utf-8") as handle:
            return handle.read().strip() or None
    return None
