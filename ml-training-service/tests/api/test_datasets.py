"""/v1/datasets over HTTP: snapshots, samples, and every kind of bad input."""

from __future__ import annotations

from typing import Any

import httpx
import numpy as np
import pytest
from support import ServiceProcess
from test_data import make_image_folder


def test_digits_dataset_is_created_and_read_back(authed: httpx.Client) -> None:
    response = authed.post("/v1/datasets", json={"source": "digits", "seed": 3, "noise": 0.05})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["source"] == "digits" and body["path"] is None
    assert body["n_test"] == 360 and body["n_train"] == 2 * (1797 - 360)
    assert body["classes"] == [str(i) for i in range(10)]
    assert body["image_shape"] == [8, 8]
    assert (body["image_size"], body["channels"]) == (8, 1)
    assert sum(body["class_counts"].values()) == 1797 and len(body["mean"]) == 1
    assert len(body["sha256"]) == 64 and body["created_at"]
    assert authed.get(f"/v1/datasets/{body['dataset_id']}").json() == body


def test_samples_are_1x8x8_images_in_0_1_with_labels(
    authed: httpx.Client, digits_dataset: dict
) -> None:
    url = f"/v1/datasets/{digits_dataset['dataset_id']}/samples"
    body = authed.get(url, params={"split": "test", "limit": 7}).json()
    assert body["split"] == "test" and len(body["instances"]) == 7
    assert np.asarray(body["instances"]).shape == (7, 1, 8, 8)
    pixels = np.asarray(body["instances"]).ravel().tolist()
    assert min(pixels) >= 0.0 and max(pixels) <= 1.0
    assert all(label in digits_dataset["classes"] for label in body["labels"])
    everything = authed.get(url, params={"limit": 10_000}).json()
    assert len(everything["instances"]) == digits_dataset["n_test"]


def test_folder_dataset_under_data_dir(authed: httpx.Client, service: ServiceProcess) -> None:
    make_image_folder(service.data_dir / "uploads" / "shapes", {"circle": 8, "square": 8})
    response = authed.post(
        "/v1/datasets", json={"source": "folder", "path": "uploads/shapes", "test_fraction": 0.25}
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["classes"] == ["circle", "square"]
    assert (body["n_train"], body["n_test"]) == (12, 4)
    assert body["path"] == "uploads/shapes"
    assert (body["image_size"], body["channels"]) == (16, 1)  # defaults from the images
    assert body["class_counts"] == {"circle": 8, "square": 8}
    resized = authed.post(
        "/v1/datasets",
        json={"source": "folder", "path": "uploads/shapes", "image_size": 10, "channels": 3},
    ).json()
    assert (resized["image_size"], resized["channels"], resized["image_shape"]) == (10, 3, [10, 10])
    samples = authed.get(f"/v1/datasets/{resized['dataset_id']}/samples").json()
    assert np.asarray(samples["instances"]).shape[1:] == (3, 10, 10)


def test_shapes_dataset_is_generated_from_json(authed: httpx.Client) -> None:
    body = {"source": "shapes", "count": 100, "image_size": 16, "seed": 5}
    first = authed.post("/v1/datasets", json=body)
    assert first.status_code == 201, first.text
    created = first.json()
    assert created["classes"] == ["circle", "cross", "square", "star", "triangle"]
    assert created["class_counts"] == dict.fromkeys(created["classes"], 20)
    assert (created["image_size"], created["channels"], len(created["mean"])) == (16, 3, 3)
    again = authed.post("/v1/datasets", json=body).json()
    assert again["sha256"] == created["sha256"] and again["dataset_id"] != created["dataset_id"]


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        ({}, "body.source: Field required"),
        ({"source": "imagenet"}, "body.source"),
        ({"source": "digits", "test_fraction": 1.5}, "body.test_fraction"),
        ({"source": "digits", "test_fraction": 0}, "body.test_fraction"),
        ({"source": "digits", "seed": -1}, "body.seed"),
        ({"source": "digits", "noise": 2}, "body.noise"),
        ({"source": "digits", "sead": 1}, "body.sead: Extra inputs are not permitted"),
        ({"source": "digits", "path": "x"}, "only for source 'folder'"),
        ({"source": "shapes", "path": "x"}, "only for source 'folder'"),
        ({"source": "digits", "count": 100}, "only for source 'shapes'"),
        ({"source": "digits", "image_size": 32}, "8x8 grayscale"),
        ({"source": "shapes", "image_size": 4}, "body.image_size"),
        ({"source": "shapes", "image_size": 513}, "body.image_size"),
        ({"source": "shapes", "channels": 2}, "body.channels"),
        ({"source": "shapes", "count": 5}, "body.count"),
        ({"source": "archive"}, "body.source"),
        ({"source": "folder"}, "needs 'path'"),
        ({"source": "folder", "path": "../../etc"}, "leaves DATA_DIR"),
        ({"source": "folder", "path": "nope"}, "not a folder"),
        ([1, 2], "body"),
    ],
)
def test_bad_dataset_requests_say_what_to_fix(
    authed: httpx.Client, payload: Any, fragment: str
) -> None:
    response = authed.post("/v1/datasets", json=payload)
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert isinstance(detail, str) and fragment in detail


def test_invalid_json_is_422(authed: httpx.Client) -> None:
    response = authed.post(
        "/v1/datasets", content=b"{nope", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422
    assert "not valid JSON" in response.json()["detail"]


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "x"}])
def test_creating_a_dataset_needs_the_token(client: httpx.Client, headers: dict) -> None:
    response = client.post("/v1/datasets", json={"source": "digits"}, headers=headers)
    assert response.status_code == 401
    assert "scope 'train'" in response.json()["detail"]
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize("path", ["/v1/datasets/ds-000000000000", "/v1/datasets/not-an-id"])
def test_unknown_dataset_is_404(client: httpx.Client, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404
    assert "POST /v1/datasets" in response.json()["detail"]
    assert client.get(f"{path}/samples").status_code == 404


@pytest.mark.parametrize(
    ("params", "fragment"),
    [({"split": "validation"}, "query.split"), ({"limit": 0}, "query.limit")],
)
def test_bad_sample_queries_are_422(
    client: httpx.Client, digits_dataset: dict, params: dict, fragment: str
) -> None:
    url = f"/v1/datasets/{digits_dataset['dataset_id']}/samples"
    response = client.get(url, params=params)
    assert response.status_code == 422 and fragment in response.json()["detail"]
