"""/v1/train and /v1/jobs: submit training jobs, follow them, cancel them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Response, status

from training_service.api.deps import (
    AdminScope,
    IdempotencyKeyDep,
    RequestIdDep,
    RunnerDep,
    TrainScope,
)
from training_service.api.responses import error, errors, needs_scope
from training_service.api.schemas import JobAccepted, JobList, JobPublic, TrainRequest
from training_service.api.submission import queue_job
from training_service.jobs.records import (
    JobFinishedError,
    JobNotFoundError,
    JobStatus,
)
from training_service.params import TrainingParams

router = APIRouter(prefix="/v1", tags=["training"])


def _job_not_found(job_id: str) -> HTTPException:
    return HTTPException(
        status.HTTP_404_NOT_FOUND, f"job '{job_id}' not found; list jobs with GET /v1/jobs"
    )


@router.post(
    "/train",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Queue a training job (idempotent with an Idempotency-Key header)",
    description=(
        "With an `Idempotency-Key` header the request can be retried safely (the training "
        "pipeline sends its Airflow run id). The same key with the same body (defaults filled "
        "in) answers the key's job while it is `queued`, `running` or `succeeded`, without "
        "queueing another. When that job ended `failed` or `cancelled`, the same key with the "
        "same body queues a NEW job and answers 202 like a first submission; from then on the "
        "key names the new job (a cleared pipeline run recovers). The same key with another "
        "body is a 409."
    ),
    response_model=JobAccepted,
    dependencies=[TrainScope],
    responses=errors(
        needs_scope("train"),
        error(409, "Idempotency-Key reused with another body"),
        error(413, "Body over MAX_BODY_BYTES"),
        error(429, "Queue full; retry after Retry-After seconds"),
        error(
            503,
            "TRAINING_EXECUTOR=ray and the Ray cluster is not reachable "
            "or refuses the service's token",
        ),
    ),
)
async def submit_training_job(
    body: TrainRequest,
    runner: RunnerDep,
    request_id: RequestIdDep,
    idempotency_key: IdempotencyKeyDep = None,
) -> JobAccepted:
    params = TrainingParams(
        epochs=body.epochs,
        batch_size=body.batch_size,
        learning_rate=body.learning_rate,
        seed=body.seed,
        architecture=body.architecture,
        optimizer=body.optimizer,
        weight_decay=body.weight_decay,
        augmentation=body.augmentation,
        early_stopping_patience=body.early_stopping_patience,
        num_workers=body.num_workers,
        cpus_per_worker=body.cpus_per_worker,
    )
    return await queue_job(
        runner,
        params,
        body.dataset_id,
        "train",
        register=body.register_model,
        request_body=body.model_dump(mode="json", by_alias=True),
        idempotency_key=idempotency_key,
        request_id=request_id,
    )


@router.get(
    "/jobs", summary="Training jobs, newest first", response_model=JobList, responses=errors()
)
async def list_jobs(
    runner: RunnerDep,
    status_filter: Annotated[
        JobStatus | None, Query(alias="status", description="Only jobs in this state.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> JobList:
    jobs = runner.store.list_jobs(status_filter, limit=limit)
    return JobList(jobs=[JobPublic.from_job(j) for j in jobs])


@router.get(
    "/jobs/{job_id}",
    summary="A training job's state, progress, metrics and registered version",
    response_model=JobPublic,
    responses=errors(error(404, "No job with this id")),
)
async def get_job(job_id: str, runner: RunnerDep) -> JobPublic:
    try:
        return JobPublic.from_job(runner.store.get(job_id))
    except JobNotFoundError:
        raise _job_not_found(job_id) from None


@router.post(
    "/jobs/{job_id}/cancel",
    summary="Cancel a queued job, or stop a running one at its next batch",
    response_model=JobPublic,
    status_code=status.HTTP_202_ACCEPTED,
    dependencies=[AdminScope],
    responses=errors(
        {200: {"model": JobPublic, "description": "The queued job is cancelled"}},
        needs_scope("admin"),
        error(404, "No job with this id"),
        error(409, "The job already finished"),
    ),
)
async def cancel_job(job_id: str, runner: RunnerDep, response: Response) -> JobPublic:
    try:
        job = runner.cancel(job_id)
    except JobNotFoundError:
        raise _job_not_found(job_id) from None
    except JobFinishedError as exc:
        raise HTTPException(
            status.HTTP_409_CONFLICT, f"job '{job_id}' already {exc}; nothing to cancel"
        ) from None
    if job.status is JobStatus.CANCELLED:
        response.status_code = status.HTTP_200_OK
    return JobPublic.from_job(job)
