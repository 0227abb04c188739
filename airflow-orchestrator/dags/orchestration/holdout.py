"""Held-out digits and their scoring: the same test split, scored through serving per version.

The training service serves the test split of a dataset snapshot
(``GET /v1/datasets/{id}/samples``); the serving service predicts with exactly the version
asked for (``POST /v1/predict`` with ``version``). The pipeline scores its new version this way,
and model_management scores staging and production on the staging version's own test split, so
the two accuracies it compares come from the same data.
"""

from __future__ import annotations

from typing import Any

from orchestration.quality_gates import holdout_accuracy
from orchestration.service_http import SERVING_CONN_ID, TRAINING_CONN_ID, call_service


def fetch_holdout_samples(dataset_id: str, limit: int) -> dict[str, Any]:
    """Up to ``limit`` test-split instances of a snapshot, with their ``labels``."""
    return call_service(
        TRAINING_CONN_ID,
        "GET",
        f"/v1/datasets/{dataset_id}/samples",
        params={"split": "test", "limit": limit},
    )


def predict_with_version(instances: list[Any], version: str) -> dict[str, Any]:
    """Serving's answer for ``instances`` from exactly model version ``version``."""
    return call_service(
        SERVING_CONN_ID,
        "POST",
        "/v1/predict",
        payload={"instances": instances, "version": version},
        bearer=True,
    )


def score_version(version: str, samples: dict[str, Any]) -> float:
    """Accuracy of ``version`` on ``samples`` (a ``fetch_holdout_samples`` answer)."""
    body = predict_with_version(samples["instances"], version)
    accuracy = holdout_accuracy(body["predictions"], samples["labels"])
    print(f"v{version}: accuracy {accuracy:.4f} on {len(samples['labels'])} held-out samples")
    return accuracy
