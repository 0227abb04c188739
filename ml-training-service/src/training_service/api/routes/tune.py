"""/v1/tune: queue a hyperparameter search job (followed and cancelled via /v1/jobs)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, HTTPException, status

from training_service.api.deps import IdempotencyKeyDep, RequestIdDep, RunnerDep, TrainScope
from training_service.api.responses import error, errors, needs_scope
from training_service.api.routes.training import RETRY_AFTER_SECONDS
from training_service.api.schemas import JobAccepted
from training_service.api.tune_schemas import TuneRequest
from training_service.data import DatasetNotFoundError
from training_service.jobs.ray_executor import (
    RayUnavailableError,
    ResourceRequestError,
    check_resources,
)
from training_service.jobs.records import IdempotencyConflictError, QueueFullError
from training_service.params import TrainingParams

router = APIRouter(prefix="/v1", tags=["training"])


@router.post(
    "/tune",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Queue a hyperparameter search job (idempotent with an Idempotency-Key header)",
    description=(
        "Runs `num_trials` trainings whose learning rate, batch size, weight decay and "
        "architecture are drawn from `search_space` by Optuna's TPE sampler (seeded): with "
        "TRAINING_EXECUTOR=ray as a Ray Tune search (OptunaSearch, trials in parallel up to "
        "the cluster's CPUs), locally one trial after another in the job's worker process. "
        "Each trial is a child MLflow run of the search's parent run; the best trial by "
        "`metric` is registered like a POST /v1/train job (alias 'staging'). Follow it with "
        "GET /v1/jobs/{job_id} (progress counts trials; `tune.best` is the best so far) and "
        "cancel it with POST /v1/jobs/{job_id}/cancel. `Idempotency-Key` behaves as for "
        "POST /v1/train."
    ),
    response_model=JobAccepted,
    dependencies=[TrainScope],
    responses=errors(
        needs_scope("train"),
        error(409, "Idempotency-Key reused with another body"),
        error(413, "Body over MAX_BODY_BYTES"),
        error(429, "Queue full; retry after Retry-After seconds"),
        error(503, "TRAINING_EXECUTOR=ray and the Ray cluster is not reachable"),
    ),
)
async def submit_tune_job(
    body: TuneRequest,
    runner: RunnerDep,
    request_id: RequestIdDep,
    idempotency_key: IdempotencyKeyDep = None,
) -> JobAccepted:
    params = TrainingParams(  # the fixed options; trials replace the searched ones
        epochs=body.epochs,
        seed=body.seed,
        optimizer=body.optimizer,
        augmentation=body.augmentation,
        early_stopping_patience=body.early_stopping_patience,
    )
    try:
        await asyncio.to_thread(check_resources, runner.executor, params)
    except ResourceRequestError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
    except RayUnavailableError as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from None
    try:
        job, _ = await asyncio.to_thread(
            runner.submit,
            params=params,
            dataset_id=body.dataset_id,
            register=body.register_model,
            # "kind" keeps a /v1/train and a /v1/tune body from ever sharing a fingerprint.
            request_body={"kind": "tune", **body.model_dump(mode="json", by_alias=True)},
            idempotency_key=idempotency_key,
            request_id=request_id,
            search=body.search(),
        )
    except IdempotencyConflictError:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            "Idempotency-Key was already used with a different request body; "
            "use a new key for a new request",
        ) from None
    except QueueFullError:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            f"the training queue is full ({runner.max_queued} jobs waiting); "
            f"retry after {RETRY_AFTER_SECONDS} s",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        ) from None
    except DatasetNotFoundError:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"dataset '{body.dataset_id}' not found; create it with POST /v1/datasets "
            "or omit dataset_id to search on a fresh digits dataset",
        ) from None
    return JobAccepted(job_id=job.job_id, status=job.status, status_url=f"/v1/jobs/{job.job_id}")
