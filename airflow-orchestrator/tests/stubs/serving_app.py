"""Stub of ml-serving-service: predict by version, model info (with live stats), reload, metrics."""

from __future__ import annotations

import json
import math
import time
from typing import Any

from fastapi import FastAPI, HTTPException
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel

from tests.stubs.common import instrument
from tests.stubs.world import World

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, math.inf)


class PredictRequest(BaseModel):
    instances: list[Any]
    version: str | None = None


def create_serving_app(world: World) -> FastAPI:
    app = FastAPI(title="serving stub")
    instrument(app, world, "serving", auth_posts=True)

    @app.post("/v1/predict")
    def predict(request: PredictRequest) -> dict[str, Any]:
        started = time.perf_counter()
        version = request.version or world.serving_version
        if version is None or version not in world.versions:
            world.serving_traffic.append(("POST", "/v1/predict", 404, 0.001))
            raise HTTPException(404, f"model {world.model_name!r} has no version {version!r}")
        # The stub 'model' reads the label from the mean pixel (an index into the version's
        # classes), then errs on a share of inputs.
        classes = version_classes(world, version)
        truth = [int(mean_pixel(image) * 10) for image in request.instances]
        wrong = round(len(truth) * (1 - world.version_quality.get(version, 1.0)))
        predictions = [
            classes[(label + 1) % len(classes)] if i < wrong else classes[label]
            for i, label in enumerate(truth)
        ]
        world.serving_traffic.append(("POST", "/v1/predict", 200, time.perf_counter() - started))
        return {
            "predictions": predictions,
            "probabilities": [[1 / len(classes)] * len(classes) for _ in predictions],
            "prediction_ids": [f"stub{len(world.serving_traffic)}-{i}" for i in range(len(truth))],
            "model": {
                "name": world.model_name,
                "alias": None if request.version else world.serving_alias,
                "version": version,
            },
        }

    @app.get("/v1/model")
    def model() -> dict[str, Any]:
        # Like the real service: 200 even before a model is loaded, with version null.
        loaded = world.serving_version is not None
        return {
            "name": world.model_name,
            "alias": world.serving_alias,
            "version": world.serving_version,
            "run_id": f"run{world.serving_version}" if loaded else None,
            "loaded_at": "2026-11-26T00:00:00Z" if loaded else None,
            "metrics": {},
            "classes": [str(i) for i in range(10)] if loaded else None,
            "input_shape": [1, 8, 8] if loaded else None,
            "preprocessing": {
                "image_size": 8,
                "channels": 1,
                "color_mode": "L",
                "resize": "bilinear",
                "scale": 255.0,
                "normalize_in_model": True,
            }
            if loaded
            else None,
            "registry": "reachable",
            "last_error": None,
            "refused_versions": {},
            "refused": None,  # no version refused as unsafe
            "live": live_section(world),
        }

    @app.post("/v1/model/reload")
    def reload() -> dict[str, Any]:
        target = world.aliases.get(world.serving_alias)
        swapped = target is not None and target != world.serving_version
        if target is not None:
            world.serving_version = target
        return {
            "name": world.model_name,
            "alias": world.serving_alias,
            "version": target,
            "swapped": swapped,
        }

    @app.get("/metrics", response_class=PlainTextResponse)
    def metrics() -> str:
        return render_metrics(world)

    return app


def mean_pixel(image: Any) -> float:
    """Mean of a nested list of numbers (H x W, C x H x W, ...)."""
    values: list[float] = []
    stack = [image]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
        else:
            values.append(float(item))
    return sum(values) / len(values)


def version_classes(world: World, version: str) -> list[str]:
    """The class names a version was tagged with (as the training service tags them)."""
    tags = {t["key"]: t["value"] for t in world.versions[version]["tags"]}
    classes: list[str] = json.loads(tags["classes"])
    return classes


def live_section(world: World) -> dict[str, Any]:
    """The ``live`` section: feedback outcomes per version, input drift of the served version."""
    drift = None  # like the real service before a model is loaded
    if world.serving_version is not None:
        drift = {
            "version": world.serving_version,
            "instances": world.drift_instances,
            "score": world.drift_score,
            "reference": world.drift_reference,
        }
    return {
        # Where the figures live: this process (one replica), like the provider's default.
        "state": "process",
        "window": world.live_window,
        "accuracy": {
            version: {
                "feedback": feedback,
                "correct": correct,
                "accuracy": correct / feedback if feedback else None,
            }
            for version, (feedback, correct) in world.live_outcomes.items()
        },
        "drift": drift,
    }


def render_metrics(world: World) -> str:
    """Prometheus text with the metric names the real service exposes."""
    counts: dict[tuple[str, str, int], int] = {}
    durations: dict[tuple[str, str], list[float]] = {}
    for method, route, status, seconds in world.serving_traffic:
        counts[(method, route, status)] = counts.get((method, route, status), 0) + 1
        durations.setdefault((method, route), []).append(seconds)
    lines = ["# TYPE http_requests_total counter"]
    for (method, route, status), count in sorted(counts.items()):
        lines.append(
            f'http_requests_total{{method="{method}",route="{route}",status="{status}"}} {count}'
        )
    lines.append("# TYPE http_request_duration_seconds histogram")
    for (method, route), observed in sorted(durations.items()):
        for bound in BUCKETS:
            le = "+Inf" if math.isinf(bound) else str(bound)
            below = sum(1 for s in observed if s <= bound)
            lines.append(
                f'http_request_duration_seconds_bucket{{method="{method}",route="{route}",'
                f'le="{le}"}} {below}'
            )
        lines.append(
            f'http_request_duration_seconds_count{{method="{method}",route="{route}"}} '
            f"{len(observed)}"
        )
    if world.serving_version:
        lines.append(
            f'model_version_info{{name="{world.model_name}",alias="{world.serving_alias}",'
            f'version="{world.serving_version}"}} 1'
        )
    return "\n".join(lines) + "\n"
