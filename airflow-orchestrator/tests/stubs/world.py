"""Shared state of the stub services: registry, jobs, served model, traffic, faults, alerts."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

MODEL_NAME = "image-classifier"
TOKEN = "test-token"
DAY_MS = 24 * 3600 * 1000


def dataset_record(
    dataset_id: str, source: str, classes: list[str], size: int, channels: int, **extra: Any
) -> dict[str, Any]:
    """A ``DatasetPublic`` body as the provider answers it."""
    n_test = extra.pop("n_test", 360)
    n_train = extra.pop("n_train", 1437)
    return {
        "dataset_id": dataset_id,
        "source": source,
        "n_train": n_train,
        "n_test": n_test,
        "classes": classes,
        "class_counts": {name: (n_train + n_test) // len(classes) for name in classes},
        "image_shape": [size, size],
        "image_size": size,
        "channels": channels,
        "mean": [0.5] * channels,
        "std": [0.25] * channels,
        "sha256": "ab" * 32,
        "created_at": "2026-11-26T00:00:00Z",
        "path": None,
        "test_fraction": 0.2,
        "seed": 42,
        "noise": 0.0,
        **extra,
    }


@dataclass
class Job:
    job_id: str
    dataset_id: str | None
    body: dict[str, Any]
    status: str = "queued"
    polls: int = 0
    model_version: str | None = None
    error: str | None = None
    request_id: str | None = None  # the X-Request-ID of the POST /v1/train that made it


@dataclass
class World:
    """Everything a test can arrange before a run and assert after it."""

    # training behaviour
    job_outcome: str = "succeed"  # or "fail"
    job_error: str = "loss diverged to NaN at epoch 3; lower learning_rate"
    polls_until_done: int = 2
    mlflow_down: str | None = None  # set: GET /ready answers 503 with this detail
    new_version_accuracy: float = 0.95
    # serving behaviour: share of correct predictions, per model version
    version_quality: dict[str, float] = field(default_factory=dict)
    serving_version: str | None = None
    # the one registered model (serving's MODEL_NAME) and the alias serving loads (MODEL_ALIAS)
    model_name: str = MODEL_NAME
    serving_alias: str = "production"
    # serving's live section of GET /v1/model
    live_window: int = 1000
    live_outcomes: dict[str, tuple[int, int]] = field(default_factory=dict)  # (feedback, correct)
    drift_score: float | None = None
    drift_instances: int = 0
    drift_reference: bool = True
    # registry
    versions: dict[str, dict[str, Any]] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)
    # traffic and faults
    datasets: dict[str, dict[str, Any]] = field(default_factory=dict)
    jobs: dict[str, Job] = field(default_factory=dict)
    idempotency: dict[str, str] = field(default_factory=dict)  # key -> job id
    dataset_idempotency: dict[str, tuple[dict[str, Any], str]] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)
    serving_traffic: list[tuple[str, str, int, float]] = field(default_factory=list)
    faults: dict[str, int] = field(default_factory=dict)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    alert_request_ids: list[str | None] = field(default_factory=list)
    notices: list[dict[str, Any]] = field(default_factory=list)  # webhook posts that are no failure
    notice_request_ids: list[str | None] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def reset(self) -> None:
        fresh = World()
        for name in self.__dataclass_fields__:
            if name != "lock":
                setattr(self, name, getattr(fresh, name))

    def register_version(
        self,
        accuracy: float,
        *,
        age_days: float = 0.0,
        aliases: tuple[str, ...] = (),
        dataset_id: str | None = None,
        classes: list[str] | None = None,
    ) -> str:
        """A version tagged as the training service tags it (``test_accuracy``, ``dataset_id``)."""
        version = str(len(self.versions) + 1)
        if dataset_id is None:  # trained on a snapshot of its own
            dataset_id = f"ds{version}"
            self.datasets[dataset_id] = dataset_record(
                dataset_id, "digits", classes or [str(i) for i in range(10)], 8, 1
            )
        self.versions[version] = {
            "name": self.model_name,
            "version": version,
            "creation_timestamp": int(time.time() * 1000 - age_days * DAY_MS),
            "last_updated_timestamp": int(time.time() * 1000),
            "run_id": f"run{version}",
            "status": "READY",
            "tags": [
                {"key": "test_accuracy", "value": str(accuracy)},
                {"key": "dataset_id", "value": dataset_id},
                {"key": "classes", "value": json.dumps(classes or [str(i) for i in range(10)])},
            ],
        }
        self.version_quality.setdefault(version, 1.0)
        for alias in aliases:
            self.aliases[alias] = version
        return version

    def register_scored_version(self, accuracy: float, **kwargs: Any) -> str:
        """A version that serving scores, on any held-out data, as its ``test_accuracy`` tag."""
        version = self.register_version(accuracy, **kwargs)
        self.version_quality[version] = accuracy
        return version

    def set_live_accuracy(self, version: str, *, feedback: int, correct: int) -> None:
        """Outcomes the serving service has collected for ``version`` through POST /v1/feedback."""
        self.live_outcomes[version] = (feedback, correct)

    def set_input_drift(self, score: float | None, *, instances: int = 500) -> None:
        self.drift_score, self.drift_instances = score, instances

    def calls(self, service: str, method: str, path: str) -> list[dict[str, Any]]:
        return [
            r
            for r in self.requests
            if r["service"] == service and r["method"] == method and r["path"] == path
        ]
