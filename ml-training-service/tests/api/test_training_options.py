"""POST /v1/train options: validated with 422s that say what to fix, listed in the OpenAPI
document, run as asked, logged to MLflow, and carried by the logged model (preprocessing)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import mlflow
import pytest
import yaml
from mlflow import MlflowClient
from support import wait_for_job

JOB_TIMEOUT = 300


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        ({"architecture": "vgg16"}, "unknown architecture 'vgg16'; choose one of: small_cnn"),
        ({"architecture": 3}, "body.architecture"),
        ({"optimizer": "rmsprop"}, "body.optimizer: Input should be 'adamw', 'adam' or 'sgd'"),
        ({"weight_decay": -0.1}, "body.weight_decay"),
        ({"weight_decay": 2}, "body.weight_decay"),
        ({"augmentation": "sometimes"}, "body.augmentation"),
        ({"early_stopping_patience": 0}, "body.early_stopping_patience"),
        ({"early_stopping_patience": 201}, "body.early_stopping_patience"),
        ({"early_stopping": 3}, "body.early_stopping: Extra inputs are not permitted"),
    ],
)
def test_bad_options_say_what_to_fix(authed: httpx.Client, payload: Any, fragment: str) -> None:
    response = authed.post("/v1/train", json=payload)
    assert response.status_code == 422, response.text
    assert fragment in response.json()["detail"]


def test_the_openapi_document_lists_the_networks(client: httpx.Client) -> None:
    schema = client.get("/openapi.json").json()["components"]["schemas"]["TrainRequest"]
    architecture = schema["properties"]["architecture"]
    assert architecture["enum"] == ["small_cnn", "resnet18", "resnet8", "resnet20"]
    assert architecture["default"] == "small_cnn"
    assert schema["properties"]["optimizer"]["enum"] == ["adamw", "adam", "sgd"]


def test_a_job_runs_with_its_options_and_the_model_carries_its_preprocessing(
    authed: httpx.Client, client: httpx.Client, mlflow_uri: str, service: Any
) -> None:
    created = authed.post(
        "/v1/datasets", json={"source": "shapes", "count": 120, "image_size": 16, "seed": 5}
    )
    assert created.status_code == 201, created.text
    dataset = created.json()
    options = {
        "dataset_id": dataset["dataset_id"], "architecture": "small_cnn", "optimizer": "sgd",
        "learning_rate": 0.05, "batch_size": 16, "weight_decay": 0.0005, "augmentation": True,
        "early_stopping_patience": 1, "epochs": 40, "seed": 3, "register": True,
    }  # fmt: skip
    response = authed.post("/v1/train", json=options)
    assert response.status_code == 202, response.text
    job = wait_for_job(client, response.json()["job_id"], {"succeeded", "failed"}, JOB_TIMEOUT)
    assert job["status"] == "succeeded", job["error"]
    for name in ("architecture", "optimizer", "weight_decay", "augmentation", "seed"):
        assert job["params"][name] == options[name]
    # Patience 1 over 40 epochs: the held-out loss stops improving well before the end.
    stopped = job["stopped_early_at"]
    assert stopped is not None and job["progress"] == {"epoch": stopped, "epochs": 40}
    # The checkpoint went with the job.
    assert not list((Path(service.data_dir) / "checkpoints").glob(f"{job['job_id']}*"))

    tracking = MlflowClient(mlflow_uri)
    run = tracking.get_run(job["run_id"])
    params = run.data.params
    assert (params["architecture"], params["optimizer"], params["augmentation"]) == (
        "small_cnn", "sgd", "true",
    )  # fmt: skip
    assert params["weight_decay"] == "0.0005" and params["early_stopping_patience"] == "1"
    assert (params["image_size"], params["channels"]) == ("16", "3")
    assert run.data.tags["early_stopping.stopped_at_epoch"] == str(stopped)
    history = tracking.get_metric_history(run.info.run_id, "test_loss")
    assert [m.step for m in history] == list(range(1, stopped + 1))
    logged = run.inputs.dataset_inputs[0].dataset
    assert logged.name == dataset["dataset_id"] and logged.digest == dataset["sha256"][:32]

    # The MLmodel file: signature [-1, C, H, W] and the preprocessing of contract section 3.
    mlflow.set_tracking_uri(mlflow_uri)
    model_dir = mlflow.artifacts.download_artifacts(
        f"models:/{job['model_name']}/{job['model_version']}"
    )
    mlmodel = yaml.safe_load((Path(model_dir) / "MLmodel").read_text())
    metadata = mlmodel["metadata"]
    assert metadata["classes"] == dataset["classes"]
    assert metadata["preprocessing"] == {
        "image_size": 16, "channels": 3, "color_mode": "RGB", "resize": "bilinear",
        "scale": 255.0, "mean": dataset["mean"], "std": dataset["std"],
        "normalize_in_model": True,
    }  # fmt: skip
    assert metadata["input_stats"]["count"] == dataset["n_train"]
    assert len(metadata["input_stats"]["mean"]) == 3 * 16 * 16
    inputs = yaml.safe_load(mlmodel["signature"]["inputs"])
    assert inputs[0]["tensor-spec"]["shape"] == [-1, 3, 16, 16]
