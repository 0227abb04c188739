"""The Grafana provisioning and dashboard files, and the compose `monitoring` profile.

Static checks: Grafana itself is an upstream image that cannot be pulled here, so what it
would reject (a panel without a query, a data source uid it does not know, a dashboard
folder that is not mounted) is checked on the files. Whether each query returns data is
test_dashboard_queries.py's job, against a real Prometheus.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from monitoring_stack import GRAFANA_DIR

from scripts.embedded.config import ROOT

DASHBOARDS = sorted((GRAFANA_DIR / "dashboards").glob("*.json"))


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def datasource() -> dict[str, Any]:
    (provisioned,) = load_yaml(GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yml")[
        "datasources"
    ]
    return dict(provisioned)


def compose_services() -> dict[str, Any]:
    return dict(load_yaml(ROOT / "docker-compose.yml")["services"])


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel, rows' nested panels included, rows themselves left out."""
    found: list[dict[str, Any]] = []
    for panel in dashboard["panels"]:
        found.extend(panel.get("panels", []))
        if panel["type"] != "row":
            found.append(panel)
    return found


def test_the_datasource_is_the_compose_prometheus() -> None:
    source = datasource()
    assert source["type"] == "prometheus"
    assert source["uid"], "dashboards refer to the data source by uid: it must be fixed"
    assert source["url"] == "http://prometheus:9090"
    # Published by the monitoring profile's TLS proxy, which reaches it at prometheus:9090.
    assert (
        "127.0.0.1:${PROMETHEUS_PORT:-9090}:9090" in compose_services()["proxy-monitoring"]["ports"]
    )


def test_every_panel_queries_the_provisioned_datasource() -> None:
    assert DASHBOARDS, "infra/grafana/dashboards/ holds no dashboard"
    uid = datasource()["uid"]
    for path in DASHBOARDS:
        dashboard = json.loads(path.read_text())
        assert dashboard["uid"] and dashboard["title"], path
        found = panels(dashboard)
        assert found, f"{path.name} has no panel"
        ids = [p["id"] for p in found]
        assert len(ids) == len(set(ids)), f"{path.name}: duplicate panel ids"
        for panel in found:
            where = f"{path.name}: panel {panel['title']!r}"
            assert panel["datasource"]["uid"] == uid, where
            assert panel["targets"], f"{where} has no query"
            for target in panel["targets"]:
                assert target["datasource"]["uid"] == uid, where
                assert target.get("expr", "").strip(), f"{where} has an empty query"
            grid = panel["gridPos"]
            assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, f"{where} is off the grid"


def test_the_dashboard_shows_what_issue_9_asks_for() -> None:
    exprs = " ".join(
        t["expr"]
        for path in DASHBOARDS
        for panel in panels(json.loads(path.read_text()))
        for t in panel["targets"]
    )
    for metric in (
        "http_requests_total",
        "http_request_duration_seconds_bucket",
        "model_version_info",
        "model_live_accuracy",
        "model_input_drift_score",
        "training_jobs",
    ):
        assert metric in exprs, f"no panel queries {metric}"
    assert "histogram_quantile(0.5," in exprs and "histogram_quantile(0.99," in exprs


def test_the_dashboard_provider_reads_the_mounted_folder() -> None:
    (provider,) = load_yaml(GRAFANA_DIR / "provisioning" / "dashboards" / "mlops.yml")["providers"]
    mounts = {
        source: target
        for source, target, *_ in (v.split(":") for v in compose_services()["grafana"]["volumes"])
    }
    assert mounts["./infra/grafana/dashboards"] == provider["options"]["path"]
    assert mounts["./infra/grafana/provisioning"] == "/etc/grafana/provisioning"


def test_the_monitoring_profile_is_opt_in_local_only_and_secret_free() -> None:
    services = compose_services()
    for name in ("prometheus", "grafana"):
        assert services[name]["profiles"] == ["monitoring"], name
        assert "healthcheck" in services[name], name
    for name, service in services.items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond localhost"
    grafana = services["grafana"]
    assert not grafana["image"].endswith(":latest") and ":" in grafana["image"], "pin Grafana"
    password = grafana["environment"]["GF_SECURITY_ADMIN_PASSWORD"]
    assert password.startswith("${GRAFANA_ADMIN_PASSWORD:?"), password
    assert "GRAFANA_ADMIN_PASSWORD=\n" in (ROOT / ".env.example").read_text()
