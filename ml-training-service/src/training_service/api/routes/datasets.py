"""/v1/datasets: build versioned dataset snapshots and read them back."""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, Response, status

from training_service.api.deps import (
    Authorized,
    DatasetKeysDep,
    DatasetsDep,
    IdempotencyKeyDep,
    SettingsDep,
)
from training_service.api.responses import UNAUTHORIZED, error, errors
from training_service.api.schemas import DatasetCreate, DatasetPublic, DatasetSamples
from training_service.data import DatasetError, DatasetNotFoundError, build_dataset
from training_service.dataset_keys import DatasetKey
from training_service.jobs.records import IdempotencyConflictError, request_fingerprint

router = APIRouter(prefix="/v1/datasets", tags=["datasets"])

NOT_FOUND = errors(error(404, "No dataset with this id"))


def _not_found(dataset_id: str) -> HTTPException:
    return HTTPException(
        status.HTTP_404_NOT_FOUND,
        f"dataset '{dataset_id}' not found; create one with POST /v1/datasets",
    )


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Build a dataset snapshot (digits or an ImageFolder tree under DATA_DIR)",
    description=(
        "With an `Idempotency-Key` header the request can be retried safely (a pipeline run "
        "that is cleared and run again sends its run id): the first request with a key builds "
        "the snapshot (201); the same key with the same body (defaults filled in) answers the "
        "same snapshot again with 200 instead of building a new one; the same key with another "
        "body is a 409. Keys are stored under DATA_DIR and survive restarts."
    ),
    response_model=DatasetPublic,
    dependencies=[Authorized],
    responses=errors(
        {200: {"model": DatasetPublic, "description": "Replay: the key's existing snapshot"}},
        UNAUTHORIZED,
        error(409, "Idempotency-Key reused with another body"),
    ),
)
async def create_dataset(
    body: DatasetCreate,
    settings: SettingsDep,
    datasets: DatasetsDep,
    keys: DatasetKeysDep,
    response: Response,
    idempotency_key: IdempotencyKeyDep = None,
) -> DatasetPublic:
    if body.source == "digits" and body.path is not None:
        raise HTTPException(422, "'path' is only for source 'folder'; remove it for 'digits'")

    def build_and_save() -> DatasetPublic:
        dataset = build_dataset(
            body.source,
            data_dir=settings.data_dir,
            path=body.path,
            test_fraction=body.test_fraction,
            seed=body.seed,
            noise=body.noise,
        )
        return DatasetPublic(**asdict(datasets.save(dataset)))

    def replay_or_build(key: str) -> tuple[DatasetPublic, bool]:
        fingerprint = request_fingerprint(body.model_dump(mode="json"))
        with keys.lock:
            known = keys.get(key)
            if known is not None:
                if known.request_sha256 != fingerprint:
                    raise IdempotencyConflictError(key)
                try:
                    return DatasetPublic(**asdict(datasets.info(known.dataset_id))), False
                except DatasetNotFoundError:  # deleted from DATA_DIR since: build it again
                    pass
            created = build_and_save()
            keys.record(DatasetKey(key, fingerprint, created.dataset_id))
            return created, True

    try:  # image decoding and hashing are CPU work: off the event loop
        if idempotency_key is None:
            return await asyncio.to_thread(build_and_save)
        dataset, created = await asyncio.to_thread(replay_or_build, idempotency_key)
    except DatasetError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc
    except IdempotencyConflictError:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            "Idempotency-Key was already used with a different request body; "
            "use a new key for a new dataset",
        ) from None
    if not created:
        response.status_code = status.HTTP_200_OK
    return dataset


@router.get(
    "/{dataset_id}",
    summary="A dataset snapshot's description",
    response_model=DatasetPublic,
    responses=NOT_FOUND,
)
async def get_dataset(dataset_id: str, datasets: DatasetsDep) -> DatasetPublic:
    try:
        return DatasetPublic(**asdict(datasets.info(dataset_id)))
    except DatasetNotFoundError:
        raise _not_found(dataset_id) from None


@router.get(
    "/{dataset_id}/samples",
    summary="Images of a split as HxW lists in 0..1, with their labels",
    response_model=DatasetSamples,
    responses=NOT_FOUND,
)
async def get_samples(
    dataset_id: str,
    datasets: DatasetsDep,
    split: Annotated[Literal["train", "test"], Query(description="Which split.")] = "test",
    limit: Annotated[int, Query(ge=1, le=10_000, description="At most this many.")] = 100,
) -> DatasetSamples:
    try:
        images, labels = await asyncio.to_thread(datasets.samples, dataset_id, split, limit)
    except DatasetNotFoundError:
        raise _not_found(dataset_id) from None
    return DatasetSamples(
        dataset_id=dataset_id, split=split, instances=images.round(6).tolist(), labels=labels
    )
