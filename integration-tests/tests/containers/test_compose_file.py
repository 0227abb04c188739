"""How the container suite reads docker-compose.yml (no Docker needed for these).

The suite starts what compose describes, so this reader must interpolate like Compose, refuse
what it cannot apply, and find the repository's compose file complete for a fresh `.env`.
"""

from __future__ import annotations

import json
from pathlib import Path

import compose_file
import pytest
import tls
from compose_file import ComposeError, Service, interpolate
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
    del variables["ORCHESTRATOR_TOKEN"]
    with pytest.raises(ComposeError, match="ORCHESTRATOR_TOKEN"):
        compose_file.load(COMPOSE_FILE, variables)


def test_the_real_compose_file_loads_with_a_fresh_env() -> None:
    services = {s.name: s for s in compose_file.load(COMPOSE_FILE, fresh_variables({}))}
    assert set(services) == {
        "proxy",
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
    assert {"prometheus", "grafana", "proxy-monitoring"} <= {s.name for s in monitoring}
    scale = compose_file.load(COMPOSE_FILE, fresh_variables({}), profiles=("scale",))
    assert {"redis", "objectstore", "lb", "mlflow-2", "serving-2", "airflow-worker"} <= {
        s.name for s in scale
    }


CA_IN_CONTAINER = "/etc/mlops/tls/ca.crt"


def _mounts_ca_read_only(service: Service, certs: str) -> bool:
    return any(
        m.source == f"{certs}/ca.crt" and m.target == CA_IN_CONTAINER and m.mode == "ro"
        for m in service.mounts
    )


def test_services_reach_each_other_only_over_tls_through_the_proxy() -> None:
    certs = "/tmp/certs-of-this-test"
    variables = {**fresh_variables({}), "CERTS_DIR": certs}
    everything = compose_file.load(COMPOSE_FILE, variables, profiles=("monitoring", "scale"))
    services = {s.name: s for s in everything}
    # The proxy: the server key and certificate from CERTS_DIR, read-only; a non-root user.
    for proxy in ("proxy", "proxy-monitoring"):
        mounts = {m.target: m for m in services[proxy].mounts}
        for name in ("server.crt", "server.key", "ca.crt"):
            mount = mounts[f"/etc/nginx/tls/{name}"]
            assert (mount.source, mount.mode) == (f"{certs}/{name}", "ro"), mount
        assert services[proxy].user not in (None, "0", "root")
    # Every URL a container is given for another service is https://proxy:<that port>.
    for name in ("training", "serving", "serving-2"):
        env = services[name].environment
        assert env["MLFLOW_TRACKING_URI"] == f"https://proxy:{tls.PROXIED_PORTS['mlflow']}"
        assert env["MLFLOW_TRACKING_SERVER_CERT_PATH"] == CA_IN_CONTAINER
        assert _mounts_ca_read_only(services[name], certs), name
    airflow = ("airflow", "airflow-scheduler", "airflow-triggerer", "airflow-dag-processor")
    for name in (*airflow, "airflow-worker", "airflow-worker-2"):
        env = services[name].environment
        assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "https://proxy:8080/execution/"
        assert env["SSL_CERT_FILE"] == CA_IN_CONTAINER
        assert _mounts_ca_read_only(services[name], certs), name
        connections = {
            key: json.loads(value) for key, value in env.items() if key.startswith("AIRFLOW_CONN_")
        }
        assert set(connections) == {
            "AIRFLOW_CONN_TRAINING_SERVICE",
            "AIRFLOW_CONN_SERVING_SERVICE",
            "AIRFLOW_CONN_MLFLOW",
        }
        for key, conn in connections.items():
            target = key.removeprefix("AIRFLOW_CONN_").removesuffix("_SERVICE").lower()
            assert (conn["schema"], conn["host"]) == ("https", tls.PROXY), (key, conn)
            assert conn["port"] == tls.PROXIED_PORTS[target], (key, conn)
            assert conn["extra"]["verify"] == CA_IN_CONTAINER, (key, conn)
    # Nothing but the proxies publishes (and Ray's dashboard, profile scale: on 127.0.0.1
    # only); nothing names another service over plain HTTP.
    assert {s.name for s in everything if s.ports} == {"proxy", "proxy-monitoring", "ray-head"}
    assert [(p.host_ip, p.container_port) for p in services["ray-head"].ports] == [
        ("127.0.0.1", 8265)
    ]
    for service in everything:
        for key, value in service.environment.items():
            for upstream in tls.PROXIED_PORTS:
                assert f"http://{upstream}:" not in value, (service.name, key, value)


def test_the_user_key_becomes_the_container_user(tmp_path: Path) -> None:
    path = tmp_path / "compose.yml"
    path.write_text(
        "services:\n  web:\n    image: x\n    user: '${UID:-10001}'\n  job:\n    image: y\n"
    )
    web, job = compose_file.load(path, {"UID": "1000"})
    assert (web.user, job.user) == ("1000", None)
    (web, _) = compose_file.load(path, {})
    assert web.user == "10001"


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
