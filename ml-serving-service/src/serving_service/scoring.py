"""The two scoring operations, free of any web framework: JSON bytes in, JSON bytes out.

`POST /v1/predict` and `POST /invocations` carry the traffic, so they are served by the pure
ASGI layer in `fastpath.py`, which calls these functions directly; FastAPI's request,
dependency and response machinery cost more per request than this service's own work. The
FastAPI routes of the same paths call the same functions, so both paths answer alike and the
OpenAPI document still describes them. `POST /v1/predict/images` takes image files
(`image_requests.py` reads the body, `images.py` decodes them as the model was trained) and
answers with class names and top-k probabilities per file. Errors are `ScoringError`s
carrying the HTTP status and a detail that says what to fix.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from serving_service.batching import MicroBatcher
from serving_service.config import Settings
from serving_service.image_requests import parse_image_request
from serving_service.images import ImageRejected, OpenedImage, open_image, to_batch
from serving_service.metrics import count_predictions
from serving_service.mlmodel import ModelLoadError
from serving_service.model import InvalidInput, LoadedModel, SmokeTestError
from serving_service.monitoring import LiveMonitor
from serving_service.registry import RegistryUnavailable, VersionNotFound
from serving_service.slot import ModelSlot, VersionCache

MLFLOW_FORMATS = ("inputs", "instances", "dataframe_split", "dataframe_records")
# Images of a request with more pixels than this in all are decoded in a worker thread (a
# 64x64 PNG decodes and resizes in about 0.1 ms; a photo takes tens of ms).
INLINE_DECODE_PIXELS = 1 << 16


class ScoringError(Exception):
    """A request that cannot be scored: `status` is the HTTP status, `detail` the fix."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


@dataclass(frozen=True)
class Scorer:
    """What scoring needs from the app: the alias slot, explicit versions, batcher, monitor."""

    settings: Settings
    slot: ModelSlot
    versions: VersionCache
    batcher: MicroBatcher
    monitor: LiveMonitor

    async def predict(self, body: bytes) -> bytes:
        """Labels, probabilities and prediction ids from the alias or an explicit version."""
        request = parse_json_object(body)
        instances = request.get("instances")
        if instances is None:
            raise ScoringError(422, "body needs 'instances': a list of images")
        limit = self.settings.max_batch_size
        if isinstance(instances, list) and len(instances) > limit:
            raise ScoringError(
                413, f"{len(instances)} instances exceed MAX_BATCH_SIZE={limit}; split the batch"
            )
        version = request.get("version")
        model, alias = await self.model_for(None if version is None else str(version))
        try:
            batch = model.to_batch(instances)
        except InvalidInput as exc:
            raise ScoringError(422, str(exc)) from exc
        scores = await self.batcher.scores(model, batch)
        labels = scores.labels(model.classes)
        count_predictions(model.version, labels)
        monitor = self.monitor
        if alias is not None:  # drift is about the alias's live traffic, not candidate tests
            monitor.observe_inputs(model.version, batch, model.input_stats)
        return orjson.dumps(
            {
                "predictions": labels,
                "probabilities": scores.probabilities,
                "prediction_ids": monitor.issue(model.version, model.classes, labels),
                "model": {"name": model.name, "alias": alias, "version": model.version},
            },
            option=orjson.OPT_SERIALIZE_NUMPY,
        )

    async def invocations(self, body: bytes, content_type: str | None) -> bytes:
        """MLflow's scoring protocol: the model's raw output under `predictions`."""
        if content_type is not None and not content_type.startswith("application/json"):
            raise ScoringError(
                415,
                "send the batch as application/json (inputs, instances, "
                "dataframe_split or dataframe_records)",
            )
        request = parse_json_object(body)
        keys = [k for k in MLFLOW_FORMATS if k in request]
        if len(keys) != 1:
            raise ScoringError(
                422,
                f"body needs exactly one of {', '.join(MLFLOW_FORMATS)}; got {sorted(request)}",
            )
        model = self.current()
        limit = self.settings.max_batch_size
        try:
            batch = mlflow_array(keys[0], request[keys[0]], model)
            if len(batch) > limit:
                raise ScoringError(413, f"{len(batch)} rows exceed MAX_BATCH_SIZE={limit}")
            batch = model.reshape_batch(batch)
        except InvalidInput as exc:
            raise ScoringError(422, str(exc)) from exc
        self.monitor.observe_inputs(model.version, batch, model.input_stats)
        scores = await self.batcher.scores(model, batch)
        return orjson.dumps({"predictions": scores.logits}, option=orjson.OPT_SERIALIZE_NUMPY)

    async def predict_images(self, body: bytes, content_type: str | None, query: bytes) -> bytes:
        """Class, top-k probabilities and a prediction id per image file, in the order sent."""
        settings = self.settings
        try:
            request = parse_image_request(
                body, content_type, query, settings.max_images_per_request
            )
            model, alias = await self.model_for(request.version)
            prep = model.preprocessing
            if prep is None:
                raise ScoringError(
                    422,
                    f"version {model.version} takes no images: its input is "
                    f"{list(model.instance_shape)}; send tensors to /v1/predict",
                )
            opened = [
                open_image(i.name, i.data, settings.max_image_pixels, i.content_type)
                for i in request.images
            ]
            if sum(o.pixels for o in opened) <= INLINE_DECODE_PIXELS:
                batch = to_batch(opened, prep)
            else:
                batch = await asyncio.to_thread(to_batch, opened, prep)
        except ImageRejected as exc:
            raise ScoringError(exc.status, exc.detail) from exc
        scores = await self.batcher.scores(model, batch)
        labels = scores.labels(model.classes)
        count_predictions(model.version, labels)
        if alias is not None:
            self.monitor.observe_inputs(model.version, batch, model.input_stats)
        ids = self.monitor.issue(model.version, model.classes, labels)
        return orjson.dumps(
            {
                "predictions": _image_answers(opened, labels, ids, scores.probabilities,
                                              model.classes, request.top_k),
                "model": {"name": model.name, "alias": alias, "version": model.version},
            }
        )  # fmt: skip

    async def model_for(self, version: str | None) -> tuple[LoadedModel, str | None]:
        """The alias's model (and the alias), or an explicit version (and no alias)."""
        if version is None:
            return self.current(), self.slot.alias
        return await self.explicit_version(version), None

    def current(self) -> LoadedModel:
        """The alias's model, or 503 naming what is missing."""
        model = self.slot.current
        if model is None:
            raise ScoringError(503, self.slot.missing_detail())
        return model

    async def explicit_version(self, version: str) -> LoadedModel:
        """A registered version by number: the serving one if it matches, else cached/loaded."""
        current = self.slot.current
        if current is not None and current.version == version:
            return current
        try:
            return await self.versions.get(version)
        except VersionNotFound as exc:
            raise ScoringError(404, str(exc)) from exc
        except RegistryUnavailable as exc:
            raise ScoringError(503, str(exc)) from exc
        except (ModelLoadError, SmokeTestError) as exc:
            raise ScoringError(422, f"version '{version}' cannot serve predictions: {exc}") from exc


def parse_json_object(body: bytes) -> dict[str, Any]:
    """The body as a JSON object, or a 422 saying why it is not one."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ScoringError(
            422, f"body is not valid JSON ({exc}); NaN and Infinity are not JSON numbers"
        ) from exc
    if not isinstance(data, dict):
        raise ScoringError(422, "body must be a JSON object")
    return data


def mlflow_array(key: str, value: Any, model: LoadedModel) -> np.ndarray:
    """The rows of any MLflow JSON input format as one float32 array."""
    if key == "dataframe_split":
        if not isinstance(value, dict) or "data" not in value:
            raise InvalidInput("'dataframe_split' needs 'data' (and optionally 'columns')")
        value = value["data"]
    elif key == "dataframe_records":
        if not isinstance(value, list) or not all(isinstance(r, dict) for r in value):
            raise InvalidInput("'dataframe_records' must be a list of objects")
        value = [list(r.values()) for r in value]
    elif isinstance(value, dict):
        # Named tensor inputs: this service serves single-input models.
        if len(value) != 1:
            raise InvalidInput("the model takes one tensor input; send one named input")
        value = next(iter(value.values()))
    if not isinstance(value, list) or not value:
        raise InvalidInput(f"'{key}' must be a non-empty list")
    try:
        return np.asarray(value, dtype=np.float32)
    except (ValueError, TypeError) as exc:
        raise InvalidInput(
            f"'{key}' must hold numbers with the same shape per row, {model.expected_shapes()}"
        ) from exc


def _image_answers(
    opened: list[OpenedImage],
    labels: list[str],
    ids: list[str],
    probabilities: np.ndarray,
    classes: tuple[str, ...],
    top_k: int,
) -> list[dict[str, Any]]:
    k = min(top_k, probabilities.shape[1])
    order = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]
    top = np.take_along_axis(probabilities, order, axis=1).tolist()
    rows = zip(opened, labels, ids, order.tolist(), top, strict=True)
    return [
        {
            "name": image.name,
            "label": label,
            "probability": probs[0],
            "top_k": [
                {"label": classes[c], "probability": p} for c, p in zip(best, probs, strict=True)
            ],
            "prediction_id": pid,
        }
        for image, label, pid, best, probs in rows
    ]
