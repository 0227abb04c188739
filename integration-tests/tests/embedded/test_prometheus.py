"""Prometheus in the embedded stack: the repository's scrape config finds both services.

The stack starts Prometheus when a `prometheus` binary is on PATH, with
infra/prometheus/prometheus.yml and target files it writes for the local ports. Without the
binary the test skips, and under CI=true a skip fails the suite (tests/conftest.py).
"""

from __future__ import annotations

import time

import httpx
import pytest

from scripts.embedded.stack import Stack


def test_prometheus_scrapes_both_services(stack: Stack) -> None:
    cfg = stack.cfg
    if cfg.prometheus_skipped:
        pytest.skip(f"the stack runs without Prometheus: {cfg.prometheus_skipped}")
    expected = {
        ("ml-serving-service", f"127.0.0.1:{cfg.serving_port}"): "up",
        ("ml-training-service", f"127.0.0.1:{cfg.training_port}"): "up",
    }
    # The first scrape comes within one scrape interval (15 s) of the target's discovery.
    deadline = time.monotonic() + 60
    while True:
        answer = httpx.get(f"{cfg.prometheus_url}/api/v1/targets", timeout=10)
        answer.raise_for_status()
        health = {
            (t["labels"]["job"], t["labels"]["instance"]): t["health"]
            for t in answer.json()["data"]["activeTargets"]
        }
        if all(health.get(target) == "up" for target in expected) or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert {target: health.get(target) for target in expected} == expected, health

    # The scraped series are the services' own metrics, under the config's job names.
    answer = httpx.get(
        f"{cfg.prometheus_url}/api/v1/query",
        params={"query": "count by (job) (http_requests_total)"},
        timeout=10,
    )
    answer.raise_for_status()
    jobs = {r["metric"]["job"] for r in answer.json()["data"]["result"]}
    assert {"ml-serving-service", "ml-training-service"} <= jobs, jobs
