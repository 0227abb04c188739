"""Held-out images and their scoring: the same test split, scored through serving per version.

The training service serves the test split of a dataset snapshot
(``GET /v1/datasets/{id}/samples``: C x H x W lists in 0..1, whatever the size and colour);
the serving service predicts with exactly the version asked for (``POST /v1/predict`` with
``version``), taking the model's own instance shape, so the samples go to it as they came.
Large images go in several requests (at most ``MAX_VALUES_PER_REQUEST`` numbers each), which
keeps each body a few megabytes. The pipeline scores its new version this way, and
model_management scores staging and production on the staging version's own test split, so
the two accuracies it compares come from the same data.
"""

from __future__ import annotations

from typing import Any

from orchestration.quality_gates import holdout_accuracy
from orchestration.service_http import SERVING_CONN_ID, TRAINING_CONN_ID, call_service

# About 8 MB of JSON per predict request (samples come rounded to 6 decimals).
MAX_VALUES_PER_REQUEST = 1_000_000
MAX_ROWS_PER_REQUEST = 256


def fetch_holdout_samples(dataset_id: str, limit: int) -> dict[str, Any]:
    """Up to ``limit`` test-split instances of a snapshot, with their ``labels``."""
    return call_service(
        TRAINING_CONN_ID,
        "GET",
        f"/v1/datasets/{dataset_id}/samples",
        params={"split": "test", "limit": limit},
    )


def values_per_instance(instance: Any) -> int:
    """How many numbers one instance holds (a nested list of any depth)."""
    count = 1
    while isinstance(instance, list):
        count *= len(instance)
        instance = instance[0] if instance else None
    return count


def rows_per_request(instances: list[Any]) -> int:
    """Instances per predict request: all of them for small images, fewer for large ones."""
    if not instances:
        return 1
    per_row = max(1, values_per_instance(instances[0]))
    return max(1, min(MAX_ROWS_PER_REQUEST, MAX_VALUES_PER_REQUEST // per_row))


def predict_with_version(instances: list[Any], version: str) -> dict[str, Any]:
    """Serving's answer for ``instances`` from exactly model version ``version``.

    Sent in chunks of ``rows_per_request``; the answer joins their predictions in order and
    keeps the first chunk's ``model`` (every chunk names the version it was scored with).
    """
    step = rows_per_request(instances)
    predictions: list[Any] = []
    model: dict[str, Any] = {}
    for start in range(0, max(len(instances), 1), step):
        body = call_service(
            SERVING_CONN_ID,
            "POST",
            "/v1/predict",
            payload={"instances": instances[start : start + step], "version": version},
            bearer=True,
        )
        answered = body.get("model") or {}
        if model and str(answered.get("version")) != str(model.get("version")):
            raise RuntimeError(
                f"serving answered with v{answered.get('version')} after v{model.get('version')}"
            )
        model = model or answered
        predictions.extend(body["predictions"])
    return {"predictions": predictions, "model": model}


def score_version(version: str, samples: dict[str, Any]) -> float:
    """Accuracy of ``version`` on ``samples`` (a ``fetch_holdout_samples`` answer)."""
    body = predict_with_version(samples["instances"], version)
    accuracy = holdout_accuracy(body["predictions"], samples["labels"])
    print(f"v{version}: accuracy {accuracy:.4f} on {len(samples['labels'])} held-out samples")
    return accuracy
