"""Adding a network is one module and one registration line: a network registered from a
test module appears in the OpenAPI enum and trains through the API in a worker process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from mlflow import MlflowClient
from support import wait_until

from training_service import networks
from training_service.app import create_app
from training_service.config import Settings


@pytest.fixture()
def tiny_mlp_registered() -> Iterator[str]:
    networks.register_network("tiny_mlp", "custom_network:build")  # the one line
    try:
        yield "tiny_mlp"
    finally:
        networks.NETWORKS.pop("tiny_mlp", None)


def test_a_registered_network_trains_through_the_api(
    tiny_mlp_registered: str, mlflow_uri: str, tmp_path: Path
) -> None:
    settings = Settings(
        environment="local",
        data_dir=tmp_path,
        mlflow_tracking_uri=mlflow_uri,
        experiment="custom-network",
        job_executor="process",  # the worker is a spawned process: the registry reaches it
    )
    with TestClient(create_app(settings)) as http:
        schema = http.get("/openapi.json").json()["components"]["schemas"]["TrainRequest"]
        assert schema["properties"]["architecture"]["enum"] == [
            "small_cnn", "resnet18", "resnet8", "resnet20", tiny_mlp_registered,
        ]  # fmt: skip
        dataset = http.post(
            "/v1/datasets", json={"source": "shapes", "count": 60, "image_size": 8}
        ).json()
        body = {"dataset_id": dataset["dataset_id"], "architecture": "tiny_mlp", "epochs": 2,
                "register": False}  # fmt: skip
        accepted = http.post("/v1/train", json=body)
        assert accepted.status_code == 202, accepted.text
        job_id = accepted.json()["job_id"]
        job = wait_until(
            lambda: (
                (j := http.get(f"/v1/jobs/{job_id}").json())["status"] in {"succeeded", "failed"}
                and j
            ),
            300,
            "the tiny_mlp job",
        )
    assert job["status"] == "succeeded", job["error"]
    assert job["params"]["architecture"] == "tiny_mlp"
    run = MlflowClient(mlflow_uri).get_run(job["run_id"])
    assert run.data.params["architecture"] == "tiny_mlp"
    assert run.data.params["image_size"] == "8" and run.data.params["channels"] == "3"
