"""Serving monitor: Prometheus text parsing, error rate, p99 and the checks built on them."""

from __future__ import annotations

from typing import Any

from orchestration.serving_health import (
    evaluate_serving_health,
    latency_quantile,
    parse_prometheus_text,
    request_counts,
    unhealthy_finding,
)

METRICS = """
# HELP http_requests_total Requests.
# TYPE http_requests_total counter
http_requests_total{method="POST",route="/v1/predict",status="200"} 95.0
http_requests_total{method="POST",route="/v1/predict",status="503"} 5.0
http_requests_total{method="GET",route="/metrics",status="500"} 50.0
# TYPE http_request_duration_seconds histogram
http_request_duration_seconds_bucket{le="0.1",method="POST",route="/v1/predict"} 90.0
http_request_duration_seconds_bucket{le="0.5",method="POST",route="/v1/predict"} 98.0
http_request_duration_seconds_bucket{le="2.5",method="POST",route="/v1/predict"} 100.0
http_request_duration_seconds_bucket{le="+Inf",method="POST",route="/v1/predict"} 100.0
http_request_duration_seconds_bucket{le="+Inf",method="GET",route="/metrics"} 50.0
model_version_info{alias="production",name="image-classifier",version="7"} 1.0
"""
MODEL = {"name": "image-classifier", "version": "7", "registry": "reachable"}


def test_parser_reads_labels_and_values() -> None:
    samples = parse_prometheus_text(METRICS)
    info = [s for s in samples if s.name == "model_version_info"]
    assert info[0].labels == {"alias": "production", "name": "image-classifier", "version": "7"}
    assert info[0].value == 1.0


def test_rates_ignore_the_services_own_routes() -> None:
    samples = parse_prometheus_text(METRICS)
    assert request_counts(samples) == (100.0, 5.0)
    assert latency_quantile(samples, 0.99) == 2.5
    assert latency_quantile(samples, 0.5) == 0.1
    assert latency_quantile([], 0.99) is None


def test_healthy_service_passes() -> None:
    health = evaluate_serving_health(
        MODEL,
        METRICS,
        expected_version="7",
        max_error_rate=0.1,
        max_p99_latency_seconds=5.0,
        min_requests=20,
    )
    assert health["failures"] == []
    assert health["error_rate"] == 0.05 and health["p99_latency_seconds"] == 2.5


def test_each_check_reports_its_failure() -> None:
    health = evaluate_serving_health(
        MODEL,
        METRICS,
        expected_version="8",
        max_error_rate=0.01,
        max_p99_latency_seconds=1.0,
        min_requests=20,
    )
    assert len(health["failures"]) == 3
    assert "serving answers with v7, production alias is v8" in health["failures"][0]
    assert "error rate 5.00% over 100 requests" in health["failures"][1]
    assert "p99 latency" in health["failures"][2]


def test_fresh_service_with_few_requests_is_not_judged_on_rates() -> None:
    health = evaluate_serving_health(
        MODEL,
        METRICS,
        expected_version="7",
        max_error_rate=0.0,
        max_p99_latency_seconds=0.01,
        min_requests=1000,
    )
    assert health["failures"] == [] and health["rate_checks_applied"] is False


def test_failed_checks_become_one_serving_unhealthy_finding_with_the_limits() -> None:
    limits: dict[str, Any] = {
        "max_error_rate": 0.01,
        "max_p99_latency_seconds": 5.0,
        "min_requests": 20,
    }
    health = evaluate_serving_health(MODEL, METRICS, expected_version="7", **limits)
    finding = unhealthy_finding(health, **limits)
    assert finding is not None and finding.kind == "serving_unhealthy"
    assert finding.message == "error rate 5.00% over 100 requests > 1.00%"
    assert finding.details == {
        "served_version": "7",
        "expected_version": "7",
        "requests": 100,
        "errors_5xx": 5,
        "error_rate": 0.05,
        "p99_latency_seconds": 2.5,
        **limits,
    }
    healthy = evaluate_serving_health(
        MODEL, METRICS, expected_version="7", **limits | {"max_error_rate": 0.1}
    )
    assert unhealthy_finding(healthy, **limits) is None


def test_the_version_check_names_the_alias_it_compared_with() -> None:
    health = evaluate_serving_health(
        MODEL,
        METRICS,
        expected_version="8",
        alias="live",
        max_error_rate=1.0,
        max_p99_latency_seconds=10.0,
        min_requests=20,
    )
    assert health["failures"] == ["serving answers with v7, live alias is v8"]
