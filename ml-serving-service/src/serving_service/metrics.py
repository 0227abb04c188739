"""Prometheus metrics (names fixed by the team contract) and the helpers that update them.

Every metric the service exports is defined here; `middleware.py` feeds the HTTP ones,
`scoring.py` the prediction counts, `watcher.py` the swaps and registry state and
`monitoring.py` the live accuracy, feedback and drift score.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

HTTP_REQUESTS = Counter(
    "http_requests_total",
    "HTTP requests by method, route and status",
    ["method", "route", "status"],
)
HTTP_LATENCY = Histogram(
    "http_request_duration_seconds",
    "HTTP request latency by method, route and status",
    ["method", "route", "status"],
    # Millisecond resolution where this service lives; seconds for model loads on demand.
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
PREDICTIONS = Counter(
    "predictions_total", "Predicted labels by model version", ["model_version", "label"]
)
MODEL_VERSION_INFO = Gauge(
    "model_version_info",
    "The version serving the alias (value is always 1)",
    ["name", "alias", "version"],
)
MODEL_SWAPS = Counter(
    "model_swaps_total",
    "Alias swap attempts: success, load_failed, smoke_test_failed, unsafe",
    ["result"],
)
MODEL_REFUSED = Gauge(
    "model_refused_version",
    "1 while the alias points to a version the service refused (unsafe: its files ask for "
    "pickle or code), by version and result; the previous version keeps serving",
    ["version", "result"],
)
REGISTRY_UP = Gauge("model_registry_up", "1 when the last registry poll succeeded")
FEEDBACK = Counter(
    "model_feedback_total",
    "Feedback outcomes received for predictions, by model version",
    ["version", "outcome"],
)
LIVE_ACCURACY = Gauge(
    "model_live_accuracy",
    "Accuracy of the model version over its most recent feedback window",
    ["version"],
)

for _result in ("success", "load_failed", "smoke_test_failed", "unsafe"):
    MODEL_SWAPS.labels(result=_result)


_PREDICTION_COUNTERS: dict[tuple[str, str], Any] = {}


def count_predictions(version: str, labels: list[str]) -> None:
    """Count labels once per distinct label, not once per instance, to keep big batches cheap.

    The labelled children are cached: `Counter.labels` takes a lock and builds a key on
    every call, which is a measurable share of a batch-1 request.
    """
    if len(labels) == 1:
        counts = {labels[0]: 1}
    else:
        counts = {}
        for label in labels:
            counts[label] = counts.get(label, 0) + 1
    for label, n in counts.items():
        child = _PREDICTION_COUNTERS.get((version, label))
        if child is None:
            child = _PREDICTION_COUNTERS[(version, label)] = PREDICTIONS.labels(
                model_version=version, label=label
            )
        child.inc(n)


def publish_model_version(name: str, alias: str, version: str, previous: str | None) -> None:
    if previous is not None:
        with contextlib.suppress(KeyError):
            MODEL_VERSION_INFO.remove(name, alias, previous)
    MODEL_VERSION_INFO.labels(name=name, alias=alias, version=version).set(1)


def publish_refusal(version: str | None, result: str | None) -> None:
    """The alias's refused version (None: the alias serves what it points to)."""
    MODEL_REFUSED.clear()
    if version is not None and result is not None:
        MODEL_REFUSED.labels(version=version, result=result).set(1)


def count_feedback(version: str, correct: bool, accuracy: float) -> None:
    """One feedback outcome of `version`, and its live accuracy after it."""
    LIVE_ACCURACY.labels(version=version).set(accuracy)
    FEEDBACK.labels(version=version, outcome="correct" if correct else "wrong").inc()


# What `LiveMonitor.drift` returns: {"version", "score", ...}, or None before any input.
DriftSource = Callable[[], dict[str, Any] | None]


class _DriftCollector(Collector):
    """`model_input_drift_score{version}`, computed at scrape time (not on the hot path)."""

    def __init__(self) -> None:
        self.source: DriftSource = lambda: None

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "model_input_drift_score",
            "Mean standardized shift of the live per-pixel input mean from the training data",
            labels=["version"],
        )
        drift = self.source()
        if drift is not None and drift["score"] is not None:
            family.add_metric([drift["version"]], drift["score"])
        yield family


_INPUT_DRIFT = _DriftCollector()
REGISTRY.register(_INPUT_DRIFT)


def export_drift(source: DriftSource) -> None:
    """Report `source()` as `model_input_drift_score` (one app per process; tests make several,
    and the newest one's is reported)."""
    _INPUT_DRIFT.source = source
