"""The compose profile `scale` as containers: the container suite's stack plus its replicas.

`ScaleStack` is `ContainerStack` (tests/containers/container_stack.py) started with the
services of the profile `scale` as well (redis, objectstore, lb, mlflow-2, serving-2,
training-2, airflow-worker, airflow-worker-2, ray-head, ray-worker, ray-worker-2) and with
the switches `make env SCALE=1` writes into `.env` (the training image: the ray variant's
tag scripts/build_images.sh built): they are read from a run of the repository's own
scripts/write_env.sh (on a copy, in a temporary folder), so the suite tests that script too.
Everything else is the container suite's: fresh secrets and CA per session, only the TLS
proxy publishes (on 127.0.0.1), every container, volume and the network carry its label.

Added here: running a command inside a service's container (`exec`), killing one
(`kill`, SIGKILL: Docker does not restart a killed container, so it stays down until
`start_again`), and the container hostnames Airflow records for the tasks each Celery
worker ran (`hostnames`).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import docker

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "containers"))

import compose_file  # noqa: E402 - found through the path above
from container_stack import (  # noqa: E402
    COMPOSE_FILE,
    ENV_EXAMPLE,
    ROOT,
    ContainerStack,
    read_env_file,
    remove_leftovers,
    wait_for,
)

__all__ = [
    "ROOT",
    "WORKERS",
    "ScaleStack",
    "hostname",
    "read_env_file",
    "remove_leftovers",
    "scale_switches",
    "start_again",
]

WRITE_ENV = ROOT / "scripts" / "write_env.sh"
PROFILES = ("scale",)
# The switches `make env SCALE=1` writes (scripts/write_env.sh); compose's defaults otherwise.
SCALE_KEYS = (
    "COMPOSE_PROFILES",
    "AIRFLOW_EXECUTOR",
    "MLFLOW_ARTIFACTS_DESTINATION",
    "MLFLOW_UPSTREAM",
    "SERVING_UPSTREAM",
    "STATE_URL",
    "TRAINING_UPSTREAM",
    "TRAINING_EXECUTOR",
    "RAY_ADDRESS",
    "TRAINING_IMAGE",
    "TRAINING_DATABASE_URL",
)
WORKERS = ("airflow-worker", "airflow-worker-2")


def scale_switches(variables: dict[str, str]) -> dict[str, str]:
    """What `make env SCALE=1` adds to a `.env` holding `variables`, by running the script."""
    folder = Path(tempfile.mkdtemp(prefix="mlops-scale-env-"))
    try:
        (folder / "scripts").mkdir()
        shutil.copy(WRITE_ENV, folder / "scripts" / "write_env.sh")
        shutil.copy(ENV_EXAMPLE, folder / ".env.example")
        (folder / ".env").write_text("".join(f"{k}={v}\n" for k, v in variables.items()))
        done = subprocess.run(
            ["bash", str(folder / "scripts" / "write_env.sh")],
            env={"PATH": "/usr/bin:/bin", "SCALE": "1"},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"SCALE=1 scripts/write_env.sh failed:\n{done.stdout}{done.stderr}")
        written = compose_file_values(folder / ".env")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    missing = [key for key in SCALE_KEYS if key not in written]
    if missing:
        raise RuntimeError(f"SCALE=1 scripts/write_env.sh did not write {missing}")
    return {key: written[key] for key in SCALE_KEYS}


def compose_file_values(path: Path) -> dict[str, str]:
    """KEY=value lines of a `.env` (the last one wins, as for Compose)."""
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            values[key] = value
    return values


class ScaleStack(ContainerStack):
    """The default services and the profile `scale`, with the switches of `make env SCALE=1`."""

    def __init__(self, images: dict[str, str], client: docker.DockerClient) -> None:
        super().__init__(images, client)
        self.variables.update(scale_switches(self.variables))
        # `make env SCALE=1` names the ray variant's :latest; the suite runs the tag it built.
        assert self.variables["TRAINING_IMAGE"].startswith("mlops/ml-training-service-ray:")
        self.variables["TRAINING_IMAGE"] = self.variables["TRAINING_RAY_IMAGE"]
        loaded = compose_file.load(COMPOSE_FILE, self.variables, profiles=PROFILES)
        self.services = {s.name: s for s in loaded}

    def container(self, name: str) -> docker.models.containers.Container:
        wrapped = self.containers[name].get_wrapped_container()
        wrapped.reload()
        return wrapped

    def exec(self, name: str, argv: list[str], timeout: float = 120) -> tuple[int, str]:
        """Run `argv` in the service's container; its exit code and output (stdout+stderr)."""
        command = ["timeout", str(int(timeout)), *argv]
        code, output = self.container(name).exec_run(command, demux=False)
        return int(code), bytes(output or b"").decode(errors="replace")

    def hostnames(self) -> dict[str, str]:
        """The hostname inside each running service's container -> the service's name."""
        return {hostname(self, name): name for name in self.containers}

    def kill(self, name: str) -> None:
        """SIGKILL the service's container, as a crash would; it stays down (no restart)."""
        self.container(name).kill()
        deadline = time.monotonic() + 30
        while self.status(name)[0] == "running":
            if time.monotonic() > deadline:
                raise TimeoutError(f"{name} still running 30 s after SIGKILL")
            time.sleep(0.2)

    def pause(self, name: str, attempts: int = 5) -> None:
        """`docker pause` the service's container. The cgroup freezer gives up ("unable to
        freeze") when one of its processes sits in an uninterruptible wait (disk I/O) at
        that instant: the engine's hiccup, not the platform's, so it is tried again."""
        for attempt in range(1, attempts + 1):
            try:
                self.container(name).pause()
                return
            except docker.errors.APIError as exc:
                if "unable to freeze" not in str(exc) or attempt == attempts:
                    raise
                time.sleep(1)

    def start_again(self, name: str, timeout: float = 300) -> None:
        """Start a killed (or stopped) service's container again and wait for its healthcheck."""
        if self.status(name)[0] != "running":
            self.container(name).start()
        self.wait_healthy(name, timeout)


def hostname(stack: ScaleStack, name: str) -> str:
    """The hostname inside the service's container (what Airflow records for a worker's task)."""
    return str(stack.container(name).attrs["Config"]["Hostname"])


def start_again(
    stack: ScaleStack,
    name: str,
    ready: Callable[[], bool] | None = None,
    timeout: float = 300,
) -> None:
    """`stack.start_again(name)`, then (optionally) wait until `ready()` holds too."""
    begin = time.monotonic()
    stack.start_again(name, timeout)
    if ready is not None:
        remaining = max(timeout - (time.monotonic() - begin), 30)
        wait_for(f"{name} ready again", ready, remaining)
