"""Wire schemas of the /v1 API (requests are validated; responses are documented models)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from training_service.jobs.records import Job, JobStatus

Seed = Annotated[int, Field(ge=0, le=2**32 - 1, description="Random seed (0..2^32-1).")]


class StrictBody(BaseModel):
    # Unknown fields are rejected: a typo such as "epoch" must not silently use a default.
    model_config = ConfigDict(extra="forbid")


class DatasetCreate(StrictBody):
    source: Literal["digits", "folder"] = Field(
        description="'digits': scikit-learn's bundled 8x8 digits; 'folder': an ImageFolder "
        "tree (<class_name>/*.png) under DATA_DIR."
    )
    path: str | None = Field(
        default=None,
        max_length=1024,
        description="Folder relative to DATA_DIR (source 'folder' only).",
    )
    test_fraction: float = Field(default=0.2, gt=0.0, lt=1.0, description="Held-out share.")
    seed: Seed = 42
    noise: float = Field(
        default=0.0,
        ge=0.0,
        le=1.0,
        description="Augmentation: std of Gaussian noise for a noisy copy of the train split "
        "(0 = none).",
    )


class DatasetPublic(BaseModel):
    dataset_id: str
    source: Literal["digits", "folder"]
    path: str | None
    n_train: int
    n_test: int
    classes: list[str]
    image_shape: list[int] = Field(description="[height, width] of every image.")
    sha256: str = Field(description="SHA-256 of the snapshot's content (classes and arrays).")
    created_at: str
    test_fraction: float
    seed: int
    noise: float


class DatasetSamples(BaseModel):
    dataset_id: str
    split: Literal["train", "test"]
    instances: list[list[list[float]]] = Field(description="Images as HxW lists, 0..1.")
    labels: list[str]


class TrainRequest(StrictBody):
    dataset_id: str | None = Field(
        default=None,
        max_length=64,
        description="Dataset to train on; when absent a fresh digits dataset is created.",
    )
    epochs: int = Field(default=10, ge=1, le=200)
    batch_size: int = Field(default=64, ge=1, le=4096)
    learning_rate: float = Field(default=0.01, gt=0.0, le=10.0)
    seed: Seed = 42
    # Named register_model in Python: "register" would shadow BaseModel's attribute.
    register_model: bool = Field(
        default=True,
        alias="register",
        description="Register the model under MODEL_NAME and give it the alias 'staging'.",
    )


class JobAccepted(BaseModel):
    job_id: str
    status: JobStatus
    status_url: str


class Progress(BaseModel):
    epoch: int
    epochs: int


class JobMetrics(BaseModel):
    test_accuracy: float
    test_loss: float
    train_loss: float


class JobPublic(BaseModel):
    job_id: str
    status: JobStatus
    progress: Progress
    metrics: JobMetrics | None = Field(description="Latest epoch's metrics (final when done).")
    params: dict[str, float | int]
    register_model: bool = Field(alias="register", serialization_alias="register")
    dataset_id: str
    run_id: str | None
    model_name: str | None
    model_version: str | None = Field(description="Registered version (MLflow style string).")
    error: str | None
    created_at: str
    started_at: str | None
    finished_at: str | None
    request_id: str | None = Field(
        description="X-Request-ID of the POST /v1/train that created the job (also the "
        "MLflow run's `request_id` tag); null for jobs created before it was recorded."
    )

    @classmethod
    def from_job(cls, job: Job) -> JobPublic:
        return cls(
            job_id=job.job_id,
            status=job.status,
            progress=Progress(epoch=job.epoch, epochs=job.epochs),
            metrics=JobMetrics(**job.metrics) if job.metrics else None,
            params=job.params,
            register=job.register,
            dataset_id=job.dataset_id,
            run_id=job.run_id,
            model_name=job.model_name,
            model_version=job.model_version,
            error=job.error,
            created_at=job.created_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
            request_id=job.request_id,
        )


class JobList(BaseModel):
    jobs: list[JobPublic]


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class Ready(BaseModel):
    status: Literal["ready"] = "ready"


class VersionInfo(BaseModel):
    service: str
    version: str


class ErrorResponse(BaseModel):
    detail: str = Field(description="What went wrong and what to change.")
