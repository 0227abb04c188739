"""Health of the serving service read from its Prometheus ``/metrics`` text and ``/v1/model``.

The counters are cumulative since the service started, so rates are over its lifetime; below
``min_requests`` observed requests the rate checks are skipped (a fresh service is not unhealthy).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from orchestration.findings import SERVING_UNHEALTHY, Finding

_SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>.*)\})?\s+(?P<value>\S+)")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
# Routes that are the service looking after itself, not user traffic.
INFRA_ROUTES = frozenset({"/metrics", "/health", "/ready", "/version"})


@dataclass(frozen=True)
class Sample:
    name: str
    labels: dict[str, str]
    value: float


def parse_prometheus_text(text: str) -> list[Sample]:
    """Samples of the Prometheus text exposition format (comments and blank lines skipped)."""
    samples = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        if not match:
            continue
        labels = dict(_LABEL.findall(match.group("labels") or ""))
        try:
            value = float(match.group("value"))
        except ValueError:
            continue
        samples.append(Sample(match.group("name"), labels, value))
    return samples


def _user_traffic(samples: Iterable[Sample], name: str) -> list[Sample]:
    return [s for s in samples if s.name == name and s.labels.get("route") not in INFRA_ROUTES]


def request_counts(samples: Iterable[Sample]) -> tuple[float, float]:
    """(all requests, 5xx responses) of user traffic."""
    traffic = _user_traffic(samples, "http_requests_total")
    total = sum(s.value for s in traffic)
    errors = sum(s.value for s in traffic if s.labels.get("status", "").startswith("5"))
    return total, errors


def latency_quantile(samples: Iterable[Sample], quantile: float) -> float | None:
    """Upper bucket bound holding ``quantile`` of user requests (None without observations)."""
    buckets: dict[float, float] = {}
    for s in _user_traffic(samples, "http_request_duration_seconds_bucket"):
        bound = math.inf if s.labels.get("le") in ("+Inf", "inf") else float(s.labels["le"])
        buckets[bound] = buckets.get(bound, 0.0) + s.value
    if not buckets or buckets.get(math.inf, max(buckets.values())) <= 0:
        return None
    ordered = sorted(buckets.items())
    target = quantile * ordered[-1][1]
    for bound, cumulative in ordered:
        if cumulative >= target:
            return bound
    return math.inf


def evaluate_serving_health(
    model_info: dict[str, Any],
    metrics_text: str,
    *,
    expected_version: str | None,
    alias: str = "production",
    max_error_rate: float,
    max_p99_latency_seconds: float,
    min_requests: int,
) -> dict[str, Any]:
    """Run the monitoring checks; returns the observations and the list of failed checks.

    ``expected_version`` is the version ``alias`` (the production alias) points to.
    """
    samples = parse_prometheus_text(metrics_text)
    total, errors = request_counts(samples)
    p99 = latency_quantile(samples, 0.99)
    served = model_info.get("version")
    failures = []
    if expected_version is not None and str(served) != str(expected_version):
        failures.append(f"serving answers with v{served}, {alias} alias is v{expected_version}")
    error_rate = errors / total if total else 0.0
    rates_checked = total >= min_requests
    if rates_checked:
        if error_rate > max_error_rate:
            failures.append(
                f"error rate {error_rate:.2%} over {int(total)} requests > {max_error_rate:.2%}"
            )
        if p99 is not None and p99 > max_p99_latency_seconds:
            failures.append(f"p99 latency <= {p99}s bucket > {max_p99_latency_seconds}s")
    return {
        "served_version": served,
        "expected_version": expected_version,
        "registry": model_info.get("registry"),
        "requests": int(total),
        "errors_5xx": int(errors),
        "error_rate": error_rate,
        "p99_latency_seconds": None if p99 is None or math.isinf(p99) else p99,
        "rate_checks_applied": rates_checked,
        "failures": failures,
    }


# Observations of a health report that a serving_unhealthy alert carries, next to the limits.
_ALERT_DETAILS = (
    "served_version",
    "expected_version",
    "requests",
    "errors_5xx",
    "error_rate",
    "p99_latency_seconds",
)


def unhealthy_finding(health: dict[str, Any], **limits: float) -> Finding | None:
    """The ``serving_unhealthy`` finding of a health report; None when every check passed."""
    if not health["failures"]:
        return None
    details = {key: health[key] for key in _ALERT_DETAILS} | limits
    return Finding(SERVING_UNHEALTHY, "; ".join(health["failures"]), details)
