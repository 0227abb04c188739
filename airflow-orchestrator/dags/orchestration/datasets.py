"""The pipeline's dataset: a new snapshot from the run's params, or one that already exists.

A run either names a dataset (``dataset_id``: an uploaded archive, or any earlier snapshot),
which is looked up with ``GET /v1/datasets/{id}``, or describes one (``dataset_source`` and
its options), which ``POST /v1/datasets`` builds. Both answers have the same shape, so the
tasks after this one never ask which it was. The POST carries ``Idempotency-Key: <run_id>``:
a retried or cleared run gets back the snapshot it made instead of a second one.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from orchestration.service_http import TRAINING_CONN_ID, call_service

SOURCES = ("digits", "shapes", "folder")


def snapshot_request(
    source: str,
    *,
    path: str | None = None,
    count: int | None = None,
    image_size: int | None = None,
    channels: int | None = None,
    test_fraction: float = 0.2,
    seed: int = 42,
) -> dict[str, Any]:
    """The ``POST /v1/datasets`` body: the options that are set; None ones are left out.

    Left out, ``image_size`` and ``channels`` take the service's default for the data (32x32
    RGB for shapes, the images' own for a folder). An option its source does not take (an
    ``image_size`` for the 8x8 digits, a ``path`` for shapes) is still sent: the service's
    422 then tells the user what to change, instead of the option being dropped unseen.
    """
    if source not in SOURCES:
        raise ValueError(f"unknown dataset_source {source!r}; choose one of {list(SOURCES)}")
    options = {"path": path, "count": count, "image_size": image_size, "channels": channels}
    body: dict[str, Any] = {"source": source, "test_fraction": test_fraction, "seed": seed}
    body.update({name: value for name, value in options.items() if value is not None})
    return body


def describe(dataset_id: str) -> dict[str, Any]:
    """A dataset as the training service describes it (classes, image size, channels...)."""
    answer: dict[str, Any] = call_service(
        TRAINING_CONN_ID, "GET", f"/v1/datasets/{quote(dataset_id, safe='')}"
    )
    return answer


def prepare_dataset(dataset_id: str | None, request: dict[str, Any], run_id: str) -> dict[str, Any]:
    """The dataset the run trains on: ``dataset_id``'s, else a snapshot built from ``request``.

    A dataset id the service does not know fails at once (404: its detail names the id).
    """
    if dataset_id:
        print(f"training on the existing dataset {dataset_id}; dataset_source is not used")
        dataset = describe(dataset_id)
    else:
        dataset = call_service(
            TRAINING_CONN_ID,
            "POST",
            "/v1/datasets",
            payload=request,
            headers={"Idempotency-Key": run_id},
            bearer=True,
        )
    print(
        f"dataset {dataset['dataset_id']} ({dataset.get('source')}): "
        f"{dataset.get('n_train')} train / {dataset.get('n_test')} test images, "
        f"{dataset.get('image_size')}x{dataset.get('image_size')}x{dataset.get('channels')}, "
        f"classes {dataset.get('classes')}"
    )
    return dataset
