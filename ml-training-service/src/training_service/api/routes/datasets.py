"""/v1/datasets: build versioned dataset snapshots (JSON or an uploaded archive), read them."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from training_service.api.dataset_schemas import (
    ArchiveOptions,
    DatasetCreate,
    DatasetPublic,
    DatasetSamples,
)
from training_service.api.deps import (
    DatasetKeysDep,
    DatasetsDep,
    IdempotencyKeyDep,
    SettingsDep,
    TrainScope,
)
from training_service.api.responses import error, errors, needs_scope
from training_service.api.uploads import receive_upload
from training_service.config import Settings
from training_service.data import (
    DatasetError,
    DatasetLimits,
    DatasetNotFoundError,
    DatasetStore,
    DatasetTooLargeError,
    build_dataset,
)
from training_service.dataset_keys import DatasetKey, DatasetKeys
from training_service.jobs.records import IdempotencyConflictError, request_fingerprint

router = APIRouter(prefix="/v1/datasets", tags=["datasets"])

NOT_FOUND = errors(error(404, "No dataset with this id"))
NOT_JSON = "request body is not valid JSON"
_UPLOAD_SCHEMA = {
    **ArchiveOptions.model_json_schema(),
    "title": "DatasetUpload",
    "required": ["file"],
}
_UPLOAD_SCHEMA["properties"] = {
    "file": {
        "type": "string",
        "format": "binary",
        "description": "A .zip or .tar.gz of <class>/<image> files (optionally under one "
        "top-level folder); PNG, JPEG, BMP, GIF, WebP or TIFF images.",
    },
    **_UPLOAD_SCHEMA["properties"],
}
_REQUEST_BODY = {
    "required": True,
    "content": {
        "application/json": {"schema": DatasetCreate.model_json_schema()},
        "multipart/form-data": {"schema": _UPLOAD_SCHEMA},
    },
}
#: Fields added after keys were first recorded: left out of a fingerprint while unset, so a
#: key recorded by an older version still replays.
_NEWER_FIELDS = ("image_size", "channels", "count")


def _limits(settings: Settings) -> DatasetLimits:
    return DatasetLimits(
        max_archive_bytes=settings.max_archive_bytes,
        max_archive_uncompressed_bytes=settings.max_archive_uncompressed_bytes,
        max_dataset_images=settings.max_dataset_images,
        max_image_pixels=settings.max_image_pixels,
    )


def _not_found(dataset_id: str) -> HTTPException:
    return HTTPException(
        status.HTTP_404_NOT_FOUND,
        f"dataset '{dataset_id}' not found; create one with POST /v1/datasets",
    )


def _validation_error(exc: ValidationError, where: str) -> RequestValidationError:
    return RequestValidationError(
        [
            {**e, "loc": (where, *e["loc"])} if e["type"] != "json_invalid" else e
            for e in exc.errors(include_url=False)
        ]
    )


async def _run(
    build: Callable[[], DatasetPublic],
    datasets: DatasetStore,
    keys: DatasetKeys,
    key: str | None,
    fingerprint: str,
) -> tuple[DatasetPublic, bool]:
    """Build (off the event loop), or replay what the Idempotency-Key made before."""

    def replay_or_build() -> tuple[DatasetPublic, bool]:
        if key is None:
            return build(), True
        with keys.lock:
            known = keys.get(key)
            if known is not None:
                if known.request_sha256 != fingerprint:
                    raise IdempotencyConflictError(key)
                try:
                    return DatasetPublic(**asdict(datasets.info(known.dataset_id))), False
                except DatasetNotFoundError:  # deleted from DATA_DIR since: build it again
                    pass
            created = build()
            keys.record(DatasetKey(key, fingerprint, created.dataset_id))
            return created, True

    try:  # image decoding and hashing are CPU work: off the event loop
        return await asyncio.to_thread(replay_or_build)
    except DatasetTooLargeError as exc:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, str(exc)) from None
    except DatasetError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
    except IdempotencyConflictError:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            "Idempotency-Key was already used with a different request body (or archive); "
            "use a new key for a new dataset",
        ) from None


async def _create_from_json(
    request: Request, settings: Settings, datasets: DatasetStore, keys: DatasetKeys, key: str | None
) -> tuple[DatasetPublic, bool]:
    raw = await request.body()
    try:
        body = DatasetCreate.model_validate_json(raw.decode("utf-8"))
    except UnicodeDecodeError:  # the answer FastAPI-parsed bodies get too (app.py)
        raise HTTPException(422, f"{NOT_JSON}: send UTF-8 encoded JSON") from None
    except ValidationError as exc:
        raise _validation_error(exc, "body") from None
    if body.source != "folder" and body.path is not None:
        raise HTTPException(
            422, f"'path' is only for source 'folder'; remove it for '{body.source}'"
        )

    def build() -> DatasetPublic:
        dataset = build_dataset(
            body.source,
            data_dir=settings.data_dir,
            path=body.path,
            test_fraction=body.test_fraction,
            seed=body.seed,
            noise=body.noise,
            image_size=body.image_size,
            channels=body.channels,
            count=body.count,
            limits=_limits(settings),
            store=datasets,
        )
        return DatasetPublic(**asdict(dataset.info))

    unset = {name for name in _NEWER_FIELDS if getattr(body, name) is None}
    fingerprint = request_fingerprint(body.model_dump(mode="json", exclude=unset))
    return await _run(build, datasets, keys, key, fingerprint)


async def _create_from_upload(
    request: Request, settings: Settings, datasets: DatasetStore, keys: DatasetKeys, key: str | None
) -> tuple[DatasetPublic, bool]:
    # Received inside DATA_DIR (the archive can be large), removed on every path.
    workdir = Path(tempfile.mkdtemp(prefix=".upload-", dir=settings.data_dir))
    try:
        upload = await receive_upload(request, workdir, settings.max_archive_bytes)
        fields = dict(upload.fields)
        if fields.get("source", "archive") != "archive":
            raise HTTPException(
                422,
                "an uploaded file makes source 'archive'; send JSON for "
                "'digits', 'folder' or 'shapes'",
            )
        fields.pop("source", None)
        if fields.get("channels", "").isdigit():  # form values are text; the enum is 1 | 3
            fields["channels"] = int(fields["channels"])  # type: ignore[assignment]
        try:
            options = ArchiveOptions.model_validate(fields)
        except ValidationError as exc:
            raise _validation_error(exc, "form") from None
        name = Path(upload.filename or "upload").name[:200]

        def build() -> DatasetPublic:
            dataset = build_dataset(
                "archive",
                data_dir=settings.data_dir,
                test_fraction=options.test_fraction,
                seed=options.seed,
                noise=options.noise,
                image_size=options.image_size,
                channels=options.channels,
                archive=upload.path,
                archive_name=name,
                limits=_limits(settings),
                store=datasets,
            )
            return DatasetPublic(**asdict(dataset.info))

        request_body = {"source": "archive", **options.model_dump(mode="json")}
        fingerprint = request_fingerprint({**request_body, "archive_sha256": upload.sha256})
        return await _run(build, datasets, keys, key, fingerprint)
    finally:
        await asyncio.to_thread(shutil.rmtree, workdir, True)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Build a dataset snapshot (digits, shapes, a folder under DATA_DIR, or an upload)",
    description=(
        "Send JSON (`application/json`) for the sources `digits`, `shapes` and `folder`, or "
        "upload an archive as `multipart/form-data`: a part `file` (a .zip or .tar.gz of "
        "`<class>/<image>` files, optionally under one top-level folder) and the form fields "
        "`image_size`, `channels`, `test_fraction`, `seed`, `noise`. Images are resized to "
        "`image_size` squared and converted to `channels`. Over a limit (MAX_ARCHIVE_BYTES, "
        "MAX_ARCHIVE_UNCOMPRESSED_BYTES, MAX_DATASET_IMAGES, MAX_IMAGE_PIXELS) is a 413 "
        "naming the setting; an unsafe or broken archive (absolute or `..` paths, links, "
        "devices, files that are not images, corrupt images, fewer than 2 classes) is a 422 "
        "naming the member. Nothing of a refused upload stays on disk.\n\n"
        "With an `Idempotency-Key` header the request can be retried safely (a pipeline run "
        "that is cleared and run again sends its run id): the first request with a key builds "
        "the snapshot (201); the same key with the same body (defaults filled in; for an "
        "upload, the same form fields and the same archive bytes) answers the same snapshot "
        "again with 200 instead of building a new one; the same key with another body or "
        "archive is a 409. Keys are stored under DATA_DIR and survive restarts."
    ),
    response_model=DatasetPublic,
    dependencies=[TrainScope],
    responses=errors(
        {200: {"model": DatasetPublic, "description": "Replay: the key's existing snapshot"}},
        needs_scope("train"),
        error(409, "Idempotency-Key reused with another body or archive"),
        error(413, "Over a size limit: the detail names the setting"),
    ),
    openapi_extra={"requestBody": _REQUEST_BODY},
)
async def create_dataset(
    request: Request,
    settings: SettingsDep,
    datasets: DatasetsDep,
    keys: DatasetKeysDep,
    response: Response,
    idempotency_key: IdempotencyKeyDep = None,
) -> DatasetPublic:
    content_type = request.headers.get("content-type", "").lower()
    create = (
        _create_from_upload if content_type.startswith("multipart/form-data") else _create_from_json
    )
    dataset, created = await create(request, settings, datasets, keys, idempotency_key)
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
    summary="Images of a split as CxHxW lists in 0..1, with their labels",
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
