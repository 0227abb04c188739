"""Prometheus metrics of the service, in a registry of its own (served at GET /metrics)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

REGISTRY = CollectorRegistry()

HTTP_REQUESTS = Counter(
    "http_requests_total",
    "HTTP requests by method, route template and status code.",
    ["method", "route", "status"],
    registry=REGISTRY,
)
HTTP_DURATION = Histogram(
    "http_request_duration_seconds",
    "HTTP request latency by method, route template and status code.",
    ["method", "route", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    registry=REGISTRY,
)
JOBS_FINISHED = Counter(
    "training_jobs_finished_total",
    "Training jobs that reached a final state, by state.",
    ["status"],
    registry=REGISTRY,
)
JOB_DURATION = Histogram(
    "training_job_duration_seconds",
    "Wall time of a training job from start to its final state (MLflow logging included).",
    buckets=(1, 2.5, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600),
    registry=REGISTRY,
)
LAST_TEST_ACCURACY = Gauge(
    "training_last_test_accuracy",
    "Test accuracy of the most recent successful job.",
    registry=REGISTRY,
)


class JobStateCollector(Collector):
    """Jobs per state, read from the job store at scrape time so it can never drift."""

    def __init__(self, count_by_status: Callable[[], dict[str, int]]) -> None:
        self._count_by_status = count_by_status

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily("training_jobs", "Training jobs by state.", labels=["status"])
        for status, count in sorted(self._count_by_status().items()):
            family.add_metric([status], count)
        yield family
