"""The MLflow Model Registry side of a job: a registered version's tags and its alias.

The version itself is created when tracking.py logs the model with `registered_model_name`;
here it gets its provenance tags and the alias `staging`. Aliases, not the deprecated
stages, mark versions; promotion to `production` is the orchestrator's decision.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from mlflow import MlflowClient

from training_service import __version__
from training_service.data import Dataset

STAGING_ALIAS = "staging"


@dataclass(frozen=True)
class RegisteredVersion:
    name: str
    version: str


def tag_and_promote(
    name: str,
    version: str,
    *,
    test_accuracy: float,
    dataset: Dataset,
    job_id: str,
    alias: str = STAGING_ALIAS,
) -> RegisteredVersion:
    """Tag a freshly registered version with its provenance and point `alias` at it."""
    client = MlflowClient()
    tags = {
        "test_accuracy": f"{test_accuracy:.6f}",
        "dataset_sha256": dataset.info.sha256,
        "dataset_id": dataset.info.dataset_id,
        "job_id": job_id,
        "service_version": __version__,
        "classes": json.dumps(dataset.classes),
    }
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)
    client.set_registered_model_alias(name, alias, version)
    return RegisteredVersion(name, version)


def register_logged_model(model_uri: str, name: str) -> str:
    """Register an already logged model (`models:/<model_id>`) as a new version of `name`,
    as log_model(registered_model_name=...) would have; returns the version."""
    import mlflow

    return str(mlflow.register_model(model_uri, name).version)
