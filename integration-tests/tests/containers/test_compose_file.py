"""How the container suite reads docker-compose.yml (no Docker needed for these).

The suite starts what compose describes, so this reader must interpolate like Compose, refuse
what it cannot apply, and find the repository's compose file complete for a fresh `.env`.
"""

from __future__ import annotations

from pathlib import Path

import compose_file
import pytest
from compose_file import ComposeError, interpolate
from container_stack import COMPOSE_FILE, fresh_variables


@pytest.mark.parametrize(
    ("text", "variables", "expected"),
    [
        ("${A}", {"A": "x"}, "x"),
        ("${A:-d}", {}, "d"),
        ("${A:-d}", {"A": ""}, "d"),
        ("${A-d}", {"A": ""}, ""),
        ("${A-d}", {}, "d"),
        ("pre-${A}-post", {"A": "x"}, "pre-x-post"),
        ("$${A} and $$", {"A": "x"}, "${A} and $"),
        ("${A:-}", {}, ""),
    ],
)
def test_interpolation_follows_compose(text: str, variables: dict[str, str], expected: str) -> None:
    assert interpolate(text, variables) == expected


def test_a_required_variable_that_is_missing_names_itself() -> None:
    with pytest.raises(ComposeError, match="POSTGRES_PASSWORD is required: set it in .env"):
        interpolate("${POSTGRES_PASSWORD:?set it in .env}", {})
    assert interpolate("${A?unset}", {"A": ""}) == ""


def test_the_real_compose_file_needs_every_secret_of_env_example() -> None:
    variables = fresh_variables({})
    del variables["API_TOKEN"]
    with pytest.raises(ComposeError, match="API_TOKEN"):
        compose_file.load(COMPOSE_FILE, variables)


def test_the_real_compose_file_loads_with_a_fresh_env() -> None:
    services = {s.name: s for s in compose_file.load(COMPOSE_FILE, fresh_variables({}))}
    assert set(services) == {
        "postgres",
        "mlflow",
        "training",
        "serving",
        "airflow-init",
        "airflow",
        "airflow-scheduler",
        "airflow-dag-processor",
        "airflow-triggerer",
    }
    assert services["airflow-init"].one_shot
    assert services["airflow-scheduler"].depends_on["training"] == "service_healthy"
    # Longer than the services' own shutdown grace (20 s), so a stop drains requests.
    assert services["serving"].stop_grace_seconds == services["training"].stop_grace_seconds == 30
    # Profiles are opt-in: monitoring brings Prometheus (and Grafana).
    monitoring = compose_file.load(COMPOSE_FILE, fresh_variables({}), profiles=("monitoring",))
    assert {"prometheus", "grafana"} <= {s.name for s in monitoring}


def test_keys_the_suite_cannot_apply_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "compose.yml"
    path.write_text("services:\n  web:\n    image: x\n    entrypoint: [sh]\n")
    with pytest.raises(ComposeError, match="entrypoint"):
        compose_file.load(path, {})


def test_a_port_published_on_every_interface_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "compose.yml"
    path.write_text('services:\n  web:\n    image: x\n    ports: ["8080:8080"]\n')
    with pytest.raises(ComposeError, match="HOST_IP:HOST_PORT:PORT"):
        compose_file.load(path, {})


def test_durations_and_healthchecks_become_docker_settings(tmp_path: Path) -> None:
    assert compose_file.seconds("1m30s") == 90
    assert compose_file.seconds("500ms") == 0.5
    with pytest.raises(ComposeError):
        compose_file.seconds("5 seconds")
    path = tmp_path / "compose.yml"
    path.write_text(
        "services:\n  web:\n    image: x\n    healthcheck:\n      test: curl -f localhost\n"
        "      interval: 5s\n      retries: 3\n  job:\n    image: y\n    restart: 'no'\n"
        "    healthcheck:\n      disable: true\n"
    )
    web, job = compose_file.load(path, {})
    assert web.healthcheck == {
        "test": ["CMD-SHELL", "curl -f localhost"],
        "interval": 5_000_000_000,
        "retries": 3,
    }
    assert job.healthcheck == {"test": ["NONE"]} and job.one_shot
