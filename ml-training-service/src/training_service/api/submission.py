"""Queueing a job for POST /v1/train and POST /v1/tune, with the answers both give.

The cluster check (TRAINING_EXECUTOR=ray: 422 when the job asks for more than the cluster
has, 503 when it is unreachable) and the runner's submit (409 for an Idempotency-Key reused
with another body, 429 with Retry-After when the queue is full, 422 for an unknown dataset),
both off the event loop.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import HTTPException, status

from training_service.api.schemas import JobAccepted
from training_service.data import DatasetNotFoundError
from training_service.jobs.ray_executor import (
    RayUnavailableError,
    ResourceRequestError,
    check_resources,
)
from training_service.jobs.records import IdempotencyConflictError, QueueFullError
from training_service.jobs.runner import JobRunner
from training_service.params import TrainingParams

#: Seconds a client should wait before retrying when the queue is full (about one job).
RETRY_AFTER_SECONDS = 15


async def queue_job(
    runner: JobRunner, params: TrainingParams, dataset_id: str | None, verb: str, **options: Any
) -> JobAccepted:
    """Check and submit the job (`options`: the rest of `runner.submit`'s arguments); `verb`
    ("train", "search") completes the unknown-dataset message."""
    try:
        await asyncio.to_thread(check_resources, runner.executor, params)
    except ResourceRequestError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
    except RayUnavailableError as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from None
    try:
        job, _ = await asyncio.to_thread(
            runner.submit, params=params, dataset_id=dataset_id, **options
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
            f"dataset '{dataset_id}' not found; create it with POST /v1/datasets "
            f"or omit dataset_id to {verb} on a fresh digits dataset",
        ) from None
    return JobAccepted(job_id=job.job_id, status=job.status, status_url=f"/v1/jobs/{job.job_id}")
