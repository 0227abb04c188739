"""Stub of ml-training-service: datasets, held-out samples, idempotent training jobs, /ready.

Datasets come in the provider's shapes: digits are 8x8 grayscale, shapes 32x32 RGB by default
(``image_size``/``channels`` as asked), and ``world.add_uploaded_dataset`` stands for an
archive uploaded before the run. Held-out samples are C x H x W lists whose mean pixel encodes
the label, which the serving stub reads back.

Idempotency as the service has it: the same ``Idempotency-Key`` and body give the same
snapshot or job; a key whose job failed or was cancelled starts a new job.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import FastAPI, Header, HTTPException
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from tests.stubs.common import instrument
from tests.stubs.world import Job, World, dataset_record

SHAPES = ["circle", "cross", "square", "star", "triangle"]


class DatasetRequest(BaseModel):
    source: str = "digits"
    path: str | None = None
    count: int | None = None
    image_size: int | None = None
    channels: int | None = None
    test_fraction: float = 0.2
    seed: int = 42
    noise: float = 0.0


class TrainRequest(BaseModel):
    dataset_id: str | None = None
    architecture: str = "small_cnn"
    optimizer: str = "adamw"
    epochs: int = 10
    batch_size: int = 64
    learning_rate: float = 0.01
    weight_decay: float = 0.0001
    augmentation: bool = False
    early_stopping_patience: int | None = None
    seed: int = 42
    # "register" would shadow a BaseModel attribute: keep the wire name as an alias.
    register_model: bool = Field(default=True, alias="register")


# The provider's TrainRequest.architecture enum.
ARCHITECTURES = ("small_cnn", "resnet18", "resnet8", "resnet20")


def sample_image(label: int, channels: int = 1, size: int = 8) -> list[list[list[float]]]:
    """A C x H x W image whose mean pixel encodes its label, so the serving stub can read it."""
    return [[[(label + 0.5) / 10] * size for _ in range(size)] for _ in range(channels)]


def create_training_app(world: World) -> FastAPI:
    app = FastAPI(title="training stub")
    instrument(app, world, "training", auth_posts=True)

    def new_dataset(request: DatasetRequest) -> dict[str, Any]:
        dataset_id = uuid.uuid4().hex[:12]
        if request.source == "shapes":
            classes, size, channels = SHAPES, request.image_size or 32, request.channels or 3
        else:
            classes, size, channels = [str(i) for i in range(10)], 8, 1
        world.datasets[dataset_id] = dataset_record(
            dataset_id,
            request.source,
            classes,
            size,
            channels,
            path=request.path,
            test_fraction=request.test_fraction,
            seed=request.seed,
            noise=request.noise,
        )
        return world.datasets[dataset_id]

    @app.post("/v1/datasets", status_code=201, response_model=None)
    def create_dataset(
        request: DatasetRequest, idempotency_key: str | None = Header(default=None)
    ) -> dict[str, Any] | JSONResponse:
        if request.source not in ("digits", "folder", "shapes"):
            raise HTTPException(422, f"unknown source {request.source!r}")
        if request.source == "digits" and (request.image_size or request.channels):
            raise HTTPException(422, "digits are 8x8 grayscale: leave image_size, channels out")
        if idempotency_key and idempotency_key in world.dataset_idempotency:
            # Same key and body: the same snapshot again, answered 200 (a replay), not 201.
            known_body, known_id = world.dataset_idempotency[idempotency_key]
            if known_body != request.model_dump():
                raise HTTPException(409, "Idempotency-Key reused with another body")
            return JSONResponse(world.datasets[known_id], status_code=200)
        dataset = new_dataset(request)
        if idempotency_key:
            world.dataset_idempotency[idempotency_key] = (
                request.model_dump(),
                dataset["dataset_id"],
            )
        return dataset

    @app.get("/v1/datasets/{dataset_id}")
    def get_dataset(dataset_id: str) -> dict[str, Any]:
        if dataset_id not in world.datasets:
            detail = f"no dataset {dataset_id!r}: create one with POST /v1/datasets"
            raise HTTPException(404, detail)
        return world.datasets[dataset_id]

    @app.get("/v1/datasets/{dataset_id}/samples")
    def samples(dataset_id: str, split: str = "test", limit: int = 100) -> dict[str, Any]:
        if dataset_id not in world.datasets:
            raise HTTPException(404, f"dataset {dataset_id!r} not found")
        dataset = world.datasets[dataset_id]
        classes = dataset.get("classes") or [str(i) for i in range(10)]
        shape = (dataset.get("channels", 1), dataset.get("image_size", 8))
        labels = [i % len(classes) for i in range(limit)]
        return {
            "dataset_id": dataset_id,
            "split": split,
            "instances": [sample_image(label, *shape) for label in labels],
            "labels": [classes[label] for label in labels],
        }

    @app.post("/v1/train", status_code=202)
    def train(
        request: TrainRequest,
        idempotency_key: str | None = Header(default=None),
        x_request_id: str | None = Header(default=None),
    ) -> JSONResponse:
        body = request.model_dump(by_alias=True)
        known = world.jobs.get(world.idempotency.get(idempotency_key or "", ""))
        # A key whose job failed or was cancelled starts a new job: a cleared run recovers.
        if known is not None and known.status not in ("failed", "cancelled"):
            if known.body != body:
                raise HTTPException(409, "Idempotency-Key reused with another body")
            return JSONResponse(_accepted(known), status_code=202)  # the same job, as accepted
        if request.dataset_id is not None and request.dataset_id not in world.datasets:
            raise HTTPException(422, f"dataset {request.dataset_id!r} not found")
        if request.architecture not in ARCHITECTURES:
            raise HTTPException(422, f"unknown architecture {request.architecture!r}")
        dataset_id = request.dataset_id or new_dataset(DatasetRequest())["dataset_id"]
        job = Job(
            job_id=uuid.uuid4().hex[:12],
            dataset_id=dataset_id,
            body=body,
            request_id=x_request_id or uuid.uuid4().hex,
        )
        world.jobs[job.job_id] = job
        if idempotency_key:
            world.idempotency[idempotency_key] = job.job_id
        return JSONResponse(_accepted(job), status_code=202)

    @app.get("/ready")
    def ready() -> dict[str, str]:
        if world.mlflow_down:
            raise HTTPException(503, world.mlflow_down)
        return {"status": "ready"}

    @app.get("/v1/jobs/{job_id}")
    def get_job(job_id: str) -> dict[str, Any]:
        job = world.jobs.get(job_id)
        if job is None:
            raise HTTPException(404, f"job {job_id!r} not found")
        if job.status in ("queued", "running"):
            job.polls += 1
            job.status = "running"
            if job.polls >= world.polls_until_done:
                _finish(world, job)
        return _job_body(world, job)

    return app


def _accepted(job: Job) -> dict[str, Any]:
    return {"job_id": job.job_id, "status": job.status, "status_url": f"/v1/jobs/{job.job_id}"}


def _finish(world: World, job: Job) -> None:
    if world.job_outcome == "fail":
        job.status, job.error = "failed", world.job_error
        return
    job.status = "succeeded"
    classes = (world.datasets.get(job.dataset_id or "") or {}).get("classes")
    job.model_version = world.register_version(
        world.new_version_accuracy, aliases=("staging",), dataset_id=job.dataset_id, classes=classes
    )


def _job_body(world: World, job: Job) -> dict[str, Any]:
    done = job.status == "succeeded"
    return {
        "job_id": job.job_id,
        "status": job.status,
        "progress": {"epoch": job.polls, "epochs": job.body["epochs"]},
        "params": {k: v for k, v in job.body.items() if k not in ("dataset_id", "register")},
        "register": job.body["register"],
        "metrics": {
            "test_accuracy": world.new_version_accuracy,
            "test_loss": 0.2,
            "train_loss": 0.1,
        }
        if done
        else None,
        "dataset_id": job.dataset_id,
        "run_id": f"run{job.model_version}" if done else None,
        "model_name": world.model_name,
        "model_version": job.model_version,
        "error": job.error,
        "request_id": job.request_id,
        "created_at": "2026-11-26T00:00:00Z",
        "started_at": "2026-11-26T00:00:01Z",
        "finished_at": "2026-11-26T00:00:09Z" if job.status in ("succeeded", "failed") else None,
    }
