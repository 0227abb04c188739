"""The Airflow asset that stands for the registered model's staging version.

``mlflow_orchestration_pipeline`` updates it (an outlet of ``validate_pipeline``) when a run has
registered a version, checked it and found it good; ``model_management`` is scheduled on it as
well as daily, so a new candidate is judged for promotion as soon as it exists.

The URI is MLflow's own model URI, ``models:/<name>@<alias>``. An asset is fixed when the DAG
file is parsed, so it names the training service's default ``MODEL_NAME`` (``image-classifier``)
and the ``staging`` alias it sets; each event's ``extra`` names the model and version the run
actually registered.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import Asset

MODEL_NAME = "image-classifier"
STAGING_ALIAS = "staging"

STAGING_MODEL = Asset(
    name=f"{MODEL_NAME}-{STAGING_ALIAS}",
    uri=f"models:/{MODEL_NAME}@{STAGING_ALIAS}",
    group="model",
)


def staging_event_extra(summary: dict[str, Any], model_name: str, run_id: str) -> dict[str, Any]:
    """The ``extra`` of a staging asset event: which version, from which run, how good."""
    return {
        "model_name": model_name,
        "version": summary["model_version"],
        "alias": STAGING_ALIAS,
        "dataset_id": summary["dataset_id"],
        "job_id": summary["job_id"],
        "holdout_accuracy": summary["holdout_accuracy"],
        "run_id": run_id,
    }
