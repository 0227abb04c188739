"""The compose policy of `make security` (scripts/security/compose_policy.py).

The committed docker-compose.yml passes it, and each rule catches the mistake it is for
(and lets the right way through), so a broken rule cannot pass quietly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from scripts.security.compose_policy import ROOT, check, check_file, main

GOOD: dict[str, Any] = {
    "image": "${APP_IMAGE:-mlops/app:latest}",
    "ports": ["127.0.0.1:${APP_PORT:-8000}:8000"],
    "environment": {
        "API_TOKEN": "${API_TOKEN:?set it in .env}",
        "DATABASE_URL": "postgresql://app:${POSTGRES_PASSWORD:?set it}@db/app",
        "API_TOKEN_FILE": "/run/secrets/api_token",
        "LOG_LEVEL": "info",
    },
    "command": ["sh", "-c", "echo $${API_TOKEN_FILE}"],
    "volumes": ["data:/data"],
    "read_only": True,
    "cap_drop": ["ALL"],
    "security_opt": ["no-new-privileges:true"],
}


def errors_of(**changes: Any) -> list[str]:
    return check({"services": {"app": {**GOOD, **changes}}}).errors


def test_the_committed_compose_file_passes() -> None:
    report = check_file(ROOT / "docker-compose.yml")
    assert report.errors == []
    assert main([str(ROOT / "docker-compose.yml")]) == 0


def test_a_hardened_service_passes_without_advice() -> None:
    report = check({"services": {"app": GOOD}})
    assert (report.errors, report.advice) == ([], [])


@pytest.mark.parametrize(
    "ports",
    [
        ["8000:8000"],
        [8000],
        ["0.0.0.0:8000:8000"],
        ["10.0.0.5:8000:8000"],
        [{"target": 8000, "published": 8000}],
        [{"target": 8000, "published": 8000, "host_ip": "0.0.0.0"}],
    ],
)
def test_ports_must_be_bound_to_loopback(ports: list[Any]) -> None:
    (error,) = errors_of(ports=ports)
    assert "bind it to 127.0.0.1" in error


def test_loopback_ports_pass_in_both_syntaxes() -> None:
    long_form = {"target": 8000, "published": 8000, "host_ip": "127.0.0.1"}
    assert errors_of(ports=["127.0.0.1:8000:8000", long_form]) == []


@pytest.mark.parametrize(
    ("changes", "wording"),
    [
        ({"privileged": True}, "privileged"),
        ({"network_mode": "host"}, "network_mode: host"),
        ({"pid": "host"}, "pid: host"),
        ({"cap_add": ["SYS_ADMIN"]}, "cap_add SYS_ADMIN"),
        ({"volumes": ["/var/run/docker.sock:/var/run/docker.sock"]}, "socket"),
        (
            {"volumes": [{"type": "bind", "source": "/run/docker.sock", "target": "/s"}]},
            "socket",
        ),
    ],
)
def test_host_access_is_refused(changes: dict[str, Any], wording: str) -> None:
    (error,) = errors_of(**changes)
    assert wording in error


@pytest.mark.parametrize(
    "environment",
    [
        {"API_TOKEN": "${API_TOKEN:-dev-token}"},
        {"API_TOKEN": "${API_TOKEN}"},
        {"API_TOKEN": "$API_TOKEN"},
        {"URL": "postgresql://u:${POSTGRES_PASSWORD-pw}@db/x"},
        {"AIRFLOW__CORE__FERNET_KEY": "${AIRFLOW_FERNET_KEY:-}"},
    ],
)
def test_secret_variables_must_be_required(environment: dict[str, str]) -> None:
    (error,) = errors_of(environment=environment)
    assert ":?set it in .env}" in error


@pytest.mark.parametrize(
    "environment",
    [{"POSTGRES_PASSWORD": "hunter2"}, ["GF_SECURITY_ADMIN_PASSWORD=admin"]],
)
def test_secret_settings_hold_no_literal(environment: Any) -> None:
    (error,) = errors_of(environment=environment)
    assert "holds a literal secret" in error


@pytest.mark.parametrize(
    "image", ["redis", "redis:latest", "${IMG:-grafana/grafana:latest}", "localhost:5000/redis"]
)
def test_upstream_images_must_be_pinned(image: str) -> None:
    (error,) = errors_of(image=image)
    assert "not pinned" in error


@pytest.mark.parametrize(
    "image", ["mlops/app:latest", "grafana/grafana-oss:12.2.1", "redis@sha256:" + "0" * 64]
)
def test_our_images_and_pinned_upstream_images_pass(image: str) -> None:
    assert errors_of(image=image) == []


def test_missing_hardening_is_advice_and_fails_only_when_strict(tmp_path: Path) -> None:
    service = {key: value for key, value in GOOD.items() if key != "read_only"}
    path = tmp_path / "compose.yml"
    path.write_text(yaml.safe_dump({"services": {"app": service}}))
    report = check_file(path)
    assert report.errors == []
    assert report.advice == ["service 'app' could add read_only: true"]
    assert main([str(path)]) == 0
    assert main(["--strict", str(path)]) == 1


def test_a_broken_rule_fails_the_command(tmp_path: Path) -> None:
    path = tmp_path / "compose.yml"
    path.write_text(yaml.safe_dump({"services": {"app": {**GOOD, "ports": ["8000:8000"]}}}))
    assert main([str(path)]) == 1
