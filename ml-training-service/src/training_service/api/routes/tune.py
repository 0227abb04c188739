"""/v1/tune: queue a hyperparameter search job (followed and cancelled via /v1/jobs)."""

from __future__ import annotations

from fastapi import APIRouter, status

from training_service.api.deps import IdempotencyKeyDep, RequestIdDep, RunnerDep, TrainScope
from training_service.api.responses import error, errors, needs_scope
from training_service.api.schemas import JobAccepted
from training_service.api.submission import queue_job
from training_service.api.tune_schemas import TuneRequest
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
        error(
            503,
            "TRAINING_EXECUTOR=ray and the Ray cluster is not reachable "
            "or refuses the service's token",
        ),
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
    return await queue_job(
        runner,
        params,
        body.dataset_id,
        "search",
        register=body.register_model,
        # "kind" keeps a /v1/train and a /v1/tune body from ever sharing a fingerprint.
        request_body={"kind": "tune", **body.model_dump(mode="json", by_alias=True)},
        idempotency_key=idempotency_key,
        request_id=request_id,
        search=body.search(),
    )
