"""Every dashboard query returns data from a real Prometheus scraping the real services.

A panel whose metric was renamed, never exported or mislabelled shows "No data" in Grafana
without any error; here it is a failed test that names the panel. The traffic fixture
trains and serves a model, predicts held-out digits, gives feedback on each prediction and
sends one bad request, so every panel has something to show. Grafana's macros are replaced
by what Grafana would send for a short range.
"""

from __future__ import annotations

import json
import re

import httpx
import pytest
from monitoring_stack import GRAFANA_DIR, Prometheus, Services, Traffic

# What Grafana substitutes before a query reaches Prometheus (for a range of minutes).
GRAFANA_MACROS = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "5m"}


def dashboard_queries() -> list[tuple[str, str]]:
    queries = []
    for path in sorted((GRAFANA_DIR / "dashboards").glob("*.json")):
        top = json.loads(path.read_text())["panels"]
        # Collapsed rows keep their panels inside the row.
        for panel in [*top, *(p for row in top for p in row.get("panels", []))]:
            for target in panel.get("targets", []):
                queries.append(
                    (f"{path.stem}: {panel['title']} [{target['refId']}]", target["expr"])
                )
    return queries


def as_sent_by_grafana(expr: str) -> str:
    for macro, value in GRAFANA_MACROS.items():
        expr = expr.replace(macro, value)
    leftover = re.findall(r"\$\w+", expr)
    assert not leftover, f"unknown Grafana variable(s) {leftover}: add them to GRAFANA_MACROS"
    return expr


QUERIES = dashboard_queries()


@pytest.mark.parametrize("expr", [q for _, q in QUERIES], ids=[name for name, _ in QUERIES])
def test_dashboard_query_returns_data(prometheus: Prometheus, traffic: Traffic, expr: str) -> None:
    result = prometheus.query(as_sent_by_grafana(expr))
    assert result, f"no series for: {expr}"


def test_prometheus_scrapes_both_services(prometheus: Prometheus, traffic: Traffic) -> None:
    answer = httpx.get(f"{prometheus.url}/api/v1/targets", timeout=10).json()
    health = {t["labels"]["job"]: t["health"] for t in answer["data"]["activeTargets"]}
    assert health == {"ml-serving-service": "up", "ml-training-service": "up"}, answer


def test_panels_show_what_the_services_report(
    prometheus: Prometheus, services: Services, traffic: Traffic
) -> None:
    served = prometheus.query('model_version_info{job="ml-serving-service"}')
    assert [s["metric"]["version"] for s in served] == [traffic.version], served
    assert served[0]["metric"]["alias"] == "production"

    predict_rate = prometheus.scalar(
        'sum(rate(http_requests_total{job="ml-serving-service", route="/v1/predict"}[1m]))'
    )
    assert predict_rate and predict_rate > 0
    rejected = prometheus.scalar(
        'sum(http_requests_total{job="ml-serving-service", route="/v1/predict", status="422"})'
    )
    assert rejected == traffic.rejected

    trained = prometheus.scalar(
        'sum(training_jobs_finished_total{job="ml-training-service", status="succeeded"})'
    )
    assert trained == 1
    accuracy = httpx.get(f"{services.serving_url}/v1/model", timeout=10).json()["metrics"]
    last = prometheus.scalar('training_last_test_accuracy{job="ml-training-service"}')
    assert last == pytest.approx(accuracy["test_accuracy"]), (last, accuracy)


def test_live_quality_panels_match_the_feedback(prometheus: Prometheus, traffic: Traffic) -> None:
    assert traffic.feedback > 0, "serving answered without prediction_ids: no feedback was sent"
    version = traffic.version
    live = prometheus.scalar(
        f'model_live_accuracy{{job="ml-serving-service", version="{version}"}}'
    )
    assert live == pytest.approx(traffic.correct / traffic.feedback)
    feedback = prometheus.scalar(
        f'sum(model_feedback_total{{job="ml-serving-service", version="{version}"}})'
    )
    assert feedback == traffic.feedback
    # Held-out digits are in distribution: far below the 0.5 alert threshold.
    drift = prometheus.scalar(
        f'model_input_drift_score{{job="ml-serving-service", version="{version}"}}'
    )
    assert drift is not None and drift < 0.5, drift


def test_rules_evaluate_and_no_alert_fires_on_a_healthy_stack(
    prometheus: Prometheus, traffic: Traffic
) -> None:
    groups = httpx.get(f"{prometheus.url}/api/v1/rules", timeout=10).json()["data"]["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    assert rules, "the copied config loaded no rules"
    broken = {r["name"]: r.get("lastError") for r in rules if r["health"] != "ok"}
    assert not broken, broken
    active = {
        r["name"]: [a["labels"] for a in r["alerts"]]
        for r in rules
        if r["type"] == "alerting" and r["alerts"]
    }
    assert not active, active
