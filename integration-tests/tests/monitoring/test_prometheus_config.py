"""infra/prometheus is valid for Prometheus itself and matches docker-compose.yml.

promtool (Debian's, beside the server) checks the config and the rules and runs the rules'
unit tests; the rest holds the layout the embedded stack and compose rely on: one
file_sd file per job under targets/, naming a compose service on its container port.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import yaml
from monitoring_stack import PROMETHEUS_DIR, binary

from scripts.embedded.config import ROOT

RULE_FILES = sorted((PROMETHEUS_DIR / "rules").glob("*.yml"))
RULE_TESTS = sorted((PROMETHEUS_DIR / "tests").glob("*.test.yml"))


def promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [binary("promtool"), *map(str, args)],
        cwd=PROMETHEUS_DIR,
        capture_output=True,
        text=True,
        timeout=120,
    )


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def test_promtool_accepts_the_config_and_its_rules() -> None:
    checked = promtool("check", "config", "prometheus.yml")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    # check config also loads every rule file the config names: make sure it named ours.
    assert RULE_FILES, "infra/prometheus/rules/ holds no rule file"
    for rule_file in RULE_FILES:
        assert rule_file.name in checked.stdout, (rule_file, checked.stdout)


def test_rule_unit_tests_pass_and_cover_every_alert() -> None:
    assert RULE_TESTS, "infra/prometheus/tests/ holds no promtool rule test"
    ran = promtool("test", "rules", *RULE_TESTS)
    assert ran.returncode == 0, ran.stdout + ran.stderr

    alerts = {
        rule["alert"]
        for path in RULE_FILES
        for group in load_yaml(path)["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }
    tested = {
        case["alertname"]
        for path in RULE_TESTS
        for test in load_yaml(path)["tests"]
        for case in test.get("alert_rule_test", [])
        # Only cases that expect the alert to fire prove the rule can fire.
        if case.get("exp_alerts")
    }
    assert alerts <= tested, f"alerts without a firing unit test: {sorted(alerts - tested)}"


def test_every_job_reads_its_committed_targets_file_naming_a_compose_service() -> None:
    config = load_yaml(PROMETHEUS_DIR / "prometheus.yml")
    compose = load_yaml(ROOT / "docker-compose.yml")["services"]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert {"ml-serving-service", "ml-training-service"} <= set(jobs), sorted(jobs)
    for name, job in jobs.items():
        assert job["file_sd_configs"] == [{"files": [f"targets/{name}.json"]}], job
        groups = json.loads((PROMETHEUS_DIR / "targets" / f"{name}.json").read_text())
        targets = [t for group in groups for t in group["targets"]]
        assert targets, f"targets/{name}.json lists no target"
        for target in targets:
            host, port = target.rsplit(":", 1)
            assert host in compose, f"{target}: {host} is not a service of docker-compose.yml"
            # Only the TLS proxy publishes: it reaches each service where the service listens.
            proxied = (ROOT / "infra" / "nginx" / "services.conf").read_text()
            assert f"set $upstream {host}:{port};" in proxied, f"{target}: not where {host} listens"
