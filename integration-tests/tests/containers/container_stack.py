"""The stack of docker-compose.yml as containers on a private Docker network, via Testcontainers.

docker-compose.yml is the one description of the stack: every container is built from its
service there (image, environment, command, volumes, healthcheck, init, restart policy) and
started in the order its `depends_on` conditions give, the way `docker compose up` does (see
compose_file.py). The suite overrides only what must differ to run beside a developer's
stack: container and volume names (per session), host ports (random, on the address compose
publishes on), and the values of `.env` (fresh random secrets, a fresh CA and certificate in
`CERTS_DIR` (tls.py), the images just built, and the few knobs compose exposes for tests,
`TEST_VARIABLES`). A broken compose file fails here. Only the TLS proxy publishes ports:
`url(name)` is the proxy's https:// port for that service, and `http` a client that trusts
this session's CA and nothing else.
Every container, volume and the network carry the label ``SUITE_LABEL``; `remove_leftovers`
deletes what a killed session left behind.
"""

from __future__ import annotations

import base64
import contextlib
import secrets
import shutil
import ssl
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import compose_file
import docker
import httpx
import tls
from compose_file import Service
from testcontainers.core.container import DockerContainer
from testcontainers.core.network import Network

SUITE_LABEL = "org.mlops.suite"
SUITE_VALUE = "containers-e2e"
ROOT = Path(__file__).resolve().parents[3]
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
# Compose variables the suite sets for speed and determinism: serving polls the registry
# every 2 s, new DAG files are parsed within 5 s, and no scheduled run interleaves with the
# runs the tests trigger.
TEST_VARIABLES = {
    "SERVING_POLL_INTERVAL": "2",
    "AIRFLOW_DAG_REFRESH_INTERVAL": "5",
    "AIRFLOW_USE_JOB_SCHEDULE": "false",
}
IMAGE_VARIABLES = (
    "POSTGRES_IMAGE",
    "MLFLOW_IMAGE",
    "TRAINING_IMAGE",
    "TRAINING_RAY_IMAGE",
    "SERVING_IMAGE",
    "AIRFLOW_IMAGE",
    "PROMETHEUS_IMAGE",
    "PROXY_IMAGE",
    "REDIS_IMAGE",
    "LB_IMAGE",
    "OBJECT_STORE_IMAGE",
)


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=value lines, as scripts/build_images.sh writes build/images.env."""
    return dict(
        line.split("=", 1)
        for line in path.read_text().splitlines()
        if line and not line.startswith("#") and "=" in line
    )


def fresh_variables(images: dict[str, str]) -> dict[str, str]:
    """What `make env` would write, with new secrets, plus the images and TEST_VARIABLES.

    Every key of .env.example that `make env` fills with a secret gets a new random one
    (url-safe base64 of 32 bytes for the Fernet key, hex otherwise); the others keep
    compose's defaults.
    """
    values: dict[str, str] = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.startswith("#") or "=" not in line:
            continue
        key, value = line.split("=", 1)
        if value:
            values[key] = value
        elif key.endswith("FERNET_KEY"):
            values[key] = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
        else:
            values[key] = secrets.token_hex(24)
    return {**values, **{k: images[k] for k in IMAGE_VARIABLES if k in images}, **TEST_VARIABLES}


def http_ok(url: str, timeout: float = 5.0, context: ssl.SSLContext | None = None) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=context) as answer:
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
    """Start, restart, recreate and inspect the compose stack's containers; `close` removes all."""

    def __init__(self, images: dict[str, str], client: docker.DockerClient) -> None:
        self.client = client
        self.certs = Path(tempfile.mkdtemp(prefix="mlops-it-certs-"))
        tls.make_certs(self.certs)
        self.ca_file = self.certs / "ca.crt"
        self.tls = tls.client_context(self.ca_file)
        # MLflow's read-only login rides along on requests to MLflow (basic auth), nowhere else.
        self.http = httpx.Client(verify=self.tls, timeout=30, auth=self._mlflow_viewer)
        self.variables = {**fresh_variables(images), "CERTS_DIR": str(self.certs)}
        self.services = {s.name: s for s in compose_file.load(COMPOSE_FILE, self.variables)}
        self.session = uuid.uuid4().hex[:8]
        self.network = Network(docker_network_kw={"labels": {SUITE_LABEL: SUITE_VALUE}})
        self.containers: dict[str, DockerContainer] = {}
        self.volumes: list[str] = []
        self.startup_seconds: dict[str, float] = {}

    @property
    def admin_user(self) -> str:
        return self.variables["AIRFLOW_ADMIN_USER"]

    @property
    def admin_password(self) -> str:
        return self.variables["AIRFLOW_ADMIN_PASSWORD"]

    @property
    def long_running(self) -> list[str]:
        return [name for name, service in self.services.items() if not service.one_shot]

    def _volume(self, name: str) -> str:
        full = f"mlops-it-{self.session}-{name}"
        if full not in self.volumes:
            self.client.volumes.create(full, labels={SUITE_LABEL: SUITE_VALUE})
            self.volumes.append(full)
        return full

    # -- lifecycle -----------------------------------------------------------------------
    def run(self, service: Service) -> DockerContainer:
        """Create and start the service's container exactly as compose describes it."""
        options: dict[str, Any] = {"labels": {SUITE_LABEL: SUITE_VALUE}, "init": service.init}
        if service.healthcheck is not None:
            options["healthcheck"] = service.healthcheck
        if service.restart != "no":
            options["restart_policy"] = {"Name": service.restart}
        if service.user is not None:
            options["user"] = service.user
        if service.shm_size is not None:
            options["shm_size"] = service.shm_size
        container = DockerContainer(service.image, **options)
        container.with_name(f"mlops-it-{self.session}-{service.name}")
        container.with_network(self.network)
        container.with_network_aliases(service.name)
        container.with_envs(**service.environment)
        if service.command:
            container.with_command(service.command)
        for port in service.ports:
            # The address compose publishes on, a random free host port.
            container.ports[str(port.container_port)] = (port.host_ip, None)  # type: ignore[assignment]
        for mount in service.mounts:
            source = self._volume(mount.source) if mount.named else mount.source
            container.with_volume_mapping(source, mount.target, mount.mode)
        self.containers[service.name] = container.start()
        return container

    def _condition_met(self, name: str, condition: str) -> bool:
        if name not in self.containers:
            return False
        state, health = self.status(name)
        if condition == "service_completed_successfully":
            if state == "exited":
                code = self.wait_exit(name, 10)
                if code != 0:
                    raise RuntimeError(f"{name} exited with {code}")
                return True
            return False
        if state in {"exited", "dead"}:
            raise RuntimeError(f"{name} {state} while its dependents wait for it")
        return condition == "service_started" or health == "healthy"

    def start(self, timeout: float = 300.0) -> None:
        """Start every service once its `depends_on` conditions hold, like `compose up`."""
        begin = time.monotonic()
        self.network.create()
        pending = dict(self.services)

        def progress() -> bool:
            for name, service in list(pending.items()):
                if all(self._condition_met(d, c) for d, c in service.depends_on.items()):
                    self.run(service)
                    self.startup_seconds[name] = time.monotonic() - begin
                    del pending[name]
            return not pending

        wait_for(f"every service started ({', '.join(pending)})", progress, timeout)
        for name in self.long_running:
            if self.services[name].healthcheck != {"test": ["NONE"]}:
                self.wait_healthy(name, max(timeout - (time.monotonic() - begin), 30))
        self.startup_seconds["stack"] = time.monotonic() - begin

    @property
    def mlflow_viewer(self) -> tuple[str, str]:
        """MLflow's read-only login for people, as `make env` writes it into .env."""
        return "viewer", self.variables["MLFLOW_VIEWER_PASSWORD"]

    def _mlflow_viewer(self, request: httpx.Request) -> httpx.Request:
        """httpx auth hook: the viewer login on a request to MLflow that carries none."""
        with contextlib.suppress(KeyError, RuntimeError, docker.errors.APIError):
            if "Authorization" not in request.headers and str(request.url).startswith(
                self.url("mlflow")
            ):
                user, password = self.mlflow_viewer
                pair = base64.b64encode(f"{user}:{password}".encode()).decode()
                request.headers["Authorization"] = f"Basic {pair}"
        return request

    def url(self, name: str, scheme: str = "https") -> str:
        """Base URL of a service as seen from this host: the TLS proxy's port for it.

        `scheme="http"` gives the same port spoken to in plain HTTP (which must be refused).
        """
        container_port = tls.PROXIED_PORTS[name]
        (port,) = [p for p in self.services[tls.PROXY].ports if p.container_port == container_port]
        bindings = self.client.api.port(
            self.containers[tls.PROXY].get_container_id(), port.container_port
        )
        if not bindings:
            raise RuntimeError(f"proxy: port {container_port} is not published (stopped?)")
        return f"{scheme}://{port.host_ip}:{bindings[0]['HostPort']}"

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
            return http_ok(self.url(name) + path, context=self.tls)

        wait_for(f"{name} answering {path}", answers, timeout)
        self.startup_seconds[name] = time.monotonic() - begin

    def wait_exit(self, name: str, timeout: float) -> int:
        result = self.containers[name].get_wrapped_container().wait(timeout=timeout)
        return int(result["StatusCode"])

    def restart(self, name: str) -> None:
        """`docker compose restart`: SIGTERM, and SIGKILL after the service's stop_grace_period."""
        grace = int(self.services[name].stop_grace_seconds)
        self.containers[name].get_wrapped_container().restart(timeout=grace)

    def recreate(self, name: str) -> None:
        """Remove the container (not its volumes) and start a new one from the same spec."""
        self.containers.pop(name).get_wrapped_container().remove(force=True, v=False)
        self.run(self.services[name])

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
        self.http.close()
        shutil.rmtree(self.certs, ignore_errors=True)
