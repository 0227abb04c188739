"""The whole stack as containers on a private Docker network, driven by Testcontainers.

Same components and settings as docker-compose.yml (PostgreSQL with one database each for
MLflow and Airflow, MLflow with proxied artifacts, the two services, Airflow's api-server,
scheduler, dag-processor and triggerer on LocalExecutor), but with random secrets, random
host ports published on 127.0.0.1 only, and named volumes private to the session, so it
never collides with a stack a developer runs. Every container, volume and the network carry
the label ``SUITE_LABEL``; `remove_leftovers` deletes what a killed session left behind.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
from testcontainers.core.container import DockerContainer
from testcontainers.core.network import Network

SUITE_LABEL = "org.mlops.suite"
SUITE_VALUE = "containers-e2e"
LOCALHOST = "127.0.0.1"


@dataclass(frozen=True)
class Images:
    """Image tags, as scripts/build_images.sh writes them to build/images.env."""

    postgres: str
    mlflow: str
    training: str
    serving: str
    airflow: str

    @classmethod
    def from_env_file(cls, path: Path) -> Images:
        values = dict(
            line.split("=", 1)
            for line in path.read_text().splitlines()
            if line and not line.startswith("#")
        )
        return cls(
            postgres=values["POSTGRES_IMAGE"],
            mlflow=values["MLFLOW_IMAGE"],
            training=values["TRAINING_IMAGE"],
            serving=values["SERVING_IMAGE"],
            airflow=values["AIRFLOW_IMAGE"],
        )


@dataclass(frozen=True)
class Secrets:
    """Fresh per session: nothing secret is baked into an image or written to disk."""

    postgres_password: str = field(default_factory=lambda: secrets.token_hex(16))
    api_token: str = field(default_factory=lambda: secrets.token_hex(16))
    airflow_password: str = field(default_factory=lambda: secrets.token_hex(16))
    jwt_secret: str = field(default_factory=lambda: secrets.token_hex(24))


@dataclass
class Spec:
    """How to (re)create one container: recreating it must give the same container."""

    name: str
    image: str
    env: dict[str, str]
    command: list[str] | None = None
    alias: str | None = None
    port: int | None = None  # published on 127.0.0.1, random host port
    volumes: dict[str, str] = field(default_factory=dict)  # volume name -> mount path


def http_ok(url: str, timeout: float = 5.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            return bool(200 <= answer.status < 300)
    except (urllib.error.URLError, OSError):
        return False


def wait_for(what: str, check: Callable[[], bool], timeout: float, interval: float = 1.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not reached within {timeout:.0f} s")
        time.sleep(interval)


def remove_leftovers(client: docker.DockerClient) -> None:
    """Remove containers, volumes and networks an earlier, killed session left behind."""
    selector = {"label": f"{SUITE_LABEL}={SUITE_VALUE}"}
    for container in client.containers.list(all=True, filters=selector):
        container.remove(force=True, v=True)
    for volume in client.volumes.list(filters=selector):
        volume.remove(force=True)
    for network in client.networks.list(filters=selector):
        network.remove()


class ContainerStack:
    """Start, restart, recreate and inspect the stack's containers; `close` removes it all."""

    def __init__(self, images: Images, client: docker.DockerClient) -> None:
        self.images = images
        self.client = client
        self.secrets = Secrets()
        self.session = uuid.uuid4().hex[:8]
        self.admin_user = "admin"
        self.network = Network(docker_network_kw={"labels": {SUITE_LABEL: SUITE_VALUE}})
        self.containers: dict[str, DockerContainer] = {}
        self.specs: dict[str, Spec] = {}
        self.volumes: list[str] = []
        self.startup_seconds: dict[str, float] = {}

    # -- configuration (mirrors docker-compose.yml) -------------------------------------
    def _volume(self, name: str) -> str:
        full = f"mlops-it-{self.session}-{name}"
        if full not in self.volumes:
            self.client.volumes.create(full, labels={SUITE_LABEL: SUITE_VALUE})
            self.volumes.append(full)
        return full

    def _database_url(self, database: str) -> str:
        return (
            f"postgresql+psycopg2://mlops:{self.secrets.postgres_password}@postgres:5432/{database}"
        )

    def _airflow_env(self) -> dict[str, str]:
        token = self.secrets.api_token

        def connection(host: str, port: int, password: str | None = None) -> str:
            conn: dict[str, Any] = {"conn_type": "http", "host": host, "port": port}
            if password:
                conn["password"] = password
            return json.dumps(conn)

        return {
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self._database_url("airflow"),
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__API_AUTH__JWT_SECRET": self.secrets.jwt_secret,
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": "http://airflow-api-server:8080/execution/",
            # docker-compose.yml's value, on purpose not the random host port: the UI builds
            # its redirects from the address the browser used and only takes the path ("/")
            # from base_url, which test_container_ui.py checks through the published port.
            "AIRFLOW__API__BASE_URL": "http://localhost:8080",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{self.admin_user}:admin",
            # The tests trigger every run themselves: no scheduled run may interleave.
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW_CONN_TRAINING_SERVICE": connection("training", 5002, token),
            "AIRFLOW_CONN_SERVING_SERVICE": connection("serving", 5001, token),
            "AIRFLOW_CONN_MLFLOW": connection("mlflow", 5000),
        }

    def _specs(self) -> list[Spec]:
        images, token = self.images, self.secrets.api_token
        service_env = {"MLFLOW_TRACKING_URI": "http://mlflow:5000", "API_TOKEN": token}
        airflow_volumes = {self._volume("airflow-logs"): "/opt/airflow/logs"}
        auth_volume = {self._volume("airflow-auth"): "/opt/airflow/auth"}
        write_password = (
            "import json, os; open(os.environ['AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE'],"
            " 'w').write(json.dumps({os.environ['AIRFLOW_ADMIN_USER']:"
            " os.environ['AIRFLOW_ADMIN_PASSWORD']}))"
        )
        return [
            Spec(
                "postgres",
                images.postgres,
                {
                    "POSTGRES_USER": "mlops",
                    "POSTGRES_PASSWORD": self.secrets.postgres_password,
                    "POSTGRES_DB": "mlflow",
                    "POSTGRES_EXTRA_DATABASES": "airflow",
                },
                alias="postgres",
                volumes={self._volume("postgres-data"): "/var/lib/postgresql/data"},
            ),
            Spec(
                "mlflow",
                images.mlflow,
                {"MLFLOW_BACKEND_STORE_URI": self._database_url("mlflow")},
                alias="mlflow",
                port=5000,
                volumes={self._volume("mlflow-artifacts"): "/mlflow/artifacts"},
            ),
            Spec(
                "airflow-init",
                images.airflow,
                {
                    **self._airflow_env(),
                    "AIRFLOW_ADMIN_USER": self.admin_user,
                    "AIRFLOW_ADMIN_PASSWORD": self.secrets.airflow_password,
                },
                command=["bash", "-c", f'airflow db migrate && python -c "{write_password}"'],
                volumes={**airflow_volumes, **auth_volume},
            ),
            Spec(
                "training",
                images.training,
                {**service_env, "ENVIRONMENT": "production"},
                alias="training",
                port=5002,
                volumes={self._volume("training-data"): "/data"},
            ),
            Spec(
                "serving",
                images.serving,
                {**service_env, "ENVIRONMENT": "production", "MODEL_POLL_INTERVAL": "2"},
                alias="serving",
                port=5001,
            ),
            Spec(
                "airflow-api-server",
                images.airflow,
                self._airflow_env(),
                command=["airflow", "api-server"],
                alias="airflow-api-server",
                port=8080,
                volumes={**airflow_volumes, **auth_volume},
            ),
            *(
                Spec(
                    f"airflow-{part}",
                    images.airflow,
                    self._airflow_env(),
                    command=["airflow", part],
                    volumes=airflow_volumes,
                )
                for part in ("scheduler", "dag-processor", "triggerer")
            ),
        ]

    # -- lifecycle -----------------------------------------------------------------------
    def run(self, spec: Spec) -> DockerContainer:
        container = DockerContainer(
            spec.image,
            # docker-init as PID 1 forwards SIGTERM, so stop and restart take seconds.
            init=True,
            labels={SUITE_LABEL: SUITE_VALUE},
        )
        container.with_name(f"mlops-it-{self.session}-{spec.name}")
        container.with_network(self.network)
        if spec.alias:
            container.with_network_aliases(spec.alias)
        container.with_envs(**spec.env)
        if spec.command:
            container.with_command(spec.command)
        if spec.port:
            # Published on the loopback interface only, on a random free port.
            container.ports[str(spec.port)] = (LOCALHOST, None)  # type: ignore[assignment]
        for volume, path in spec.volumes.items():
            container.with_volume_mapping(volume, path, "rw")
        self.specs[spec.name] = spec
        self.containers[spec.name] = container.start()
        return container

    def start(self, timeout: float = 300.0) -> None:
        """Bring the stack up in dependency order, like `docker compose up` does."""
        begin = time.monotonic()
        self.network.create()
        specs = {spec.name: spec for spec in self._specs()}
        self.run(specs["postgres"])
        self.wait_healthy("postgres", timeout)
        self.run(specs["mlflow"])
        self.run(specs["airflow-init"])
        exit_code = self.wait_exit("airflow-init", timeout)
        if exit_code != 0:
            raise RuntimeError(f"airflow-init exited with {exit_code}")
        for name in (
            "airflow-api-server",
            "airflow-scheduler",
            "airflow-dag-processor",
            "airflow-triggerer",
        ):
            self.run(specs[name])
        self.wait_http("mlflow", "/health", timeout)
        self.run(specs["training"])
        self.run(specs["serving"])
        for name in ("training", "serving"):
            self.wait_http(name, "/health", timeout)
        self.wait_http("airflow-api-server", "/api/v2/monitor/health", timeout)
        self.startup_seconds["stack"] = time.monotonic() - begin

    def url(self, name: str) -> str:
        """Base URL of a container's published port, as seen from this host."""
        spec = self.specs[name]
        assert spec.port is not None, f"{name} publishes no port"
        bindings = self.client.api.port(self.containers[name].get_container_id(), spec.port)
        if not bindings:
            raise RuntimeError(f"{name}: port {spec.port} is not published (container stopped?)")
        return f"http://{LOCALHOST}:{bindings[0]['HostPort']}"

    def status(self, name: str) -> tuple[str, str | None]:
        container = self.containers[name].get_wrapped_container()
        container.reload()
        health = container.attrs["State"].get("Health") or {}
        return container.status, health.get("Status")

    def wait_healthy(self, name: str, timeout: float) -> None:
        def healthy() -> bool:
            state, health = self.status(name)
            if state in {"exited", "dead"}:
                raise RuntimeError(f"{name} {state} while starting")
            return health == "healthy"

        wait_for(f"{name} healthy", healthy, timeout)

    def wait_http(self, name: str, path: str, timeout: float) -> None:
        begin = time.monotonic()

        def answers() -> bool:
            state, _ = self.status(name)
            if state in {"exited", "dead"}:
                raise RuntimeError(f"{name} {state} while starting")
            return http_ok(self.url(name) + path)

        wait_for(f"{name} answering {path}", answers, timeout)
        self.startup_seconds[name] = time.monotonic() - begin

    def wait_exit(self, name: str, timeout: float) -> int:
        result = self.containers[name].get_wrapped_container().wait(timeout=timeout)
        return int(result["StatusCode"])

    def restart(self, name: str) -> None:
        self.containers[name].get_wrapped_container().restart(timeout=20)

    def recreate(self, name: str) -> None:
        """Remove the container (not its volumes) and start a new one from the same spec."""
        self.containers.pop(name).get_wrapped_container().remove(force=True, v=False)
        self.run(self.specs[name])

    def logs(self, name: str, tail: int = 80) -> str:
        container = self.containers.get(name)
        if container is None or container._container is None:
            return "(not started)"
        try:
            raw = container.get_wrapped_container().logs(tail=tail, timestamps=False)
        except docker.errors.APIError as exc:
            return f"(logs unavailable: {exc})"
        return bytes(raw).decode(errors="replace")

    def all_logs(self, tail: int = 80) -> str:
        parts = []
        for name in self.containers:
            state = "?"
            with contextlib.suppress(docker.errors.APIError):
                state = "/".join(s or "-" for s in self.status(name))
            header = f"===== {name} ({state}), last {tail} lines ====="
            parts.append(f"{header}\n{self.logs(name, tail)}")
        return "\n".join(parts)

    def close(self) -> None:
        """Remove every container, volume and the network, whatever state they are in."""
        # Best effort at every step: one failure must not leave the rest behind.
        for container in self.containers.values():
            with contextlib.suppress(Exception):
                container.get_wrapped_container().remove(force=True, v=True)
        self.containers.clear()
        for volume in self.volumes:
            with contextlib.suppress(docker.errors.APIError):
                self.client.volumes.get(volume).remove(force=True)
        with contextlib.suppress(Exception):  # never created, or already gone
            self.network.remove()
