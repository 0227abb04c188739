"""Wire schemas of the /v1 API (requests are validated; responses are documented models)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, field_validator

from training_service.jobs.records import Job, JobStatus
from training_service.networks import DEFAULT_ARCHITECTURE, check_architecture, network_names
from training_service.tune_spec import SEARCHED, TUNE_KEY, TuneProgress, tune_spec_of

Seed = Annotated[int, Field(ge=0, le=2**32 - 1, description="Random seed (0..2^32-1).")]


class StrictBody(BaseModel):
    # Unknown fields are rejected: a typo such as "epoch" must not silently use a default.
    model_config = ConfigDict(extra="forbid")


class TrainRequest(StrictBody):
    dataset_id: str | None = Field(
        default=None,
        max_length=64,
        description="Dataset to train on; when absent a fresh digits dataset is created.",
    )
    architecture: str = Field(
        default=DEFAULT_ARCHITECTURE,
        description="Network to train, by registered name (see the README: adding a network).",
        # The registry is read when the document is generated: registered names are the enum.
        json_schema_extra=lambda schema: schema.update(enum=list[JsonValue](network_names())),
    )
    optimizer: Literal["adamw", "adam", "sgd"] = Field(
        default="adamw", description="adamw, adam, or sgd (momentum 0.9, Nesterov)."
    )
    epochs: int = Field(default=10, ge=1, le=200)
    batch_size: int = Field(default=64, ge=1, le=4096)
    learning_rate: float = Field(
        default=0.01, gt=0.0, le=10.0, description="Peak of the one-cycle schedule."
    )
    weight_decay: float = Field(default=1e-4, ge=0.0, le=1.0)
    augmentation: bool = Field(
        default=False,
        description="Random crop (zero padding 4 px, 1/8 of the side below 32 px) and "
        "horizontal flip of training images, drawn from the seed.",
    )
    early_stopping_patience: int | None = Field(
        default=None,
        ge=1,
        le=200,
        description="Stop when the held-out loss has not improved for this many epochs "
        "(null: off).",
    )
    seed: Seed = 42
    num_workers: int = Field(
        default=1,
        ge=1,
        le=256,
        description="Data-parallel Ray Train workers (TRAINING_EXECUTOR=ray; 422 when the "
        "cluster has fewer CPUs). batch_size stays the global batch.",
    )
    cpus_per_worker: int = Field(
        default=1, ge=1, le=256, description="CPUs reserved on the Ray cluster per worker."
    )
    # Named register_model in Python: "register" would shadow BaseModel's attribute.
    register_model: bool = Field(
        default=True,
        alias="register",
        description="Register the model under MODEL_NAME and give it the alias 'staging'.",
    )

    @field_validator("architecture")
    @classmethod
    def _registered(cls, name: str) -> str:
        return check_architecture(name)


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
    params: dict[str, bool | int | float | str | None] = Field(
        description="The training options the job runs with (defaults filled in)."
    )
    stopped_early_at: int | None = Field(
        default=None,
        description="Epoch after which early stopping ended the job; null when it ran "
        "every epoch (or is still running).",
    )
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
    kind: Literal["train", "tune"] = Field(
        default="train",
        description="train (POST /v1/train) or tune (POST /v1/tune: progress counts trials, "
        "metrics are the best trial's, run_id is the search's parent run).",
    )
    tune: TuneProgress | None = Field(
        default=None, description="The search of a tune job (null for training jobs)."
    )

    @classmethod
    def from_job(cls, job: Job) -> JobPublic:
        search = tune_spec_of(job.params)
        params = job.params
        if search is not None:  # the searched options are in `tune`, not fixed params
            params = {k: v for k, v in params.items() if k != TUNE_KEY and k not in SEARCHED}
        return cls(
            job_id=job.job_id,
            status=job.status,
            progress=Progress(epoch=job.epoch, epochs=job.epochs),
            metrics=JobMetrics(**job.metrics)
            if job.metrics and "test_accuracy" in job.metrics
            else None,
            kind="train" if search is None else "tune",
            tune=None if search is None else TuneProgress.of(search, job.epoch, job.metrics),
            params=params,
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
            stopped_early_at=job.stopped_early_at,
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
