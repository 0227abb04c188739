"""Prometheus cannot be stopped or reconfigured over HTTP: its lifecycle API is off.

With `--web.enable-lifecycle`, anyone who reaches Prometheus' port can `POST /-/quit` (it
exits) or `POST /-/reload`. Each command line that deploys Prometheus is started here for
real, with Debian's binary (scripts/ensure_prometheus.sh): the image's, i.e. the `CMD` of
infra/prometheus/Dockerfile unless docker-compose.yml gives a `command`, and the embedded
stack's (`scripts.embedded.components`). Only the config, data folder and listen address are
swapped for the test's own; every other flag stays as deployed. Then the attack must get 403
and Prometheus must still answer. The way a config edit is applied instead (SIGHUP, as
infra/README.md says) is shown to work.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml

from scripts.embedded import prometheus as embedded_prometheus
from scripts.embedded.components import prometheus_component
from scripts.embedded.config import ROOT, StackConfig

DOCKERFILE = ROOT / "infra" / "prometheus" / "Dockerfile"
COMPOSE_FILE = ROOT / "docker-compose.yml"
CONFIG = ROOT / "infra" / "prometheus" / "prometheus.yml"
# Flags that name paths or addresses of the deployment; the test gives its own.
SWAPPED = ("--config.file=", "--storage.tsdb.path=", "--web.listen-address=")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def prometheus_binary() -> str:
    """Debian's prometheus on PATH; missing is a failure, not a skip (CI installs it)."""
    path = shutil.which("prometheus")
    if path is None:
        pytest.fail("`prometheus` is not on PATH: run scripts/ensure_prometheus.sh")
    return path


def dockerfile_cmd(text: str) -> list[str]:
    """The exec-form `CMD` of a Dockerfile (its last one, as Docker uses)."""
    logical = text.replace("\\\n", " ").splitlines()
    cmds = [line.strip()[3:].strip() for line in logical if line.strip().startswith("CMD ")]
    assert cmds, "infra/prometheus/Dockerfile has no CMD"
    argv = json.loads(cmds[-1])
    assert isinstance(argv, list) and all(isinstance(a, str) for a in argv), cmds[-1]
    return argv


def image_argv() -> list[str]:
    """What the prometheus container runs: compose's `command`, or else the image's CMD."""
    service = yaml.safe_load(COMPOSE_FILE.read_text())["services"]["prometheus"]
    command = service.get("command")
    if isinstance(command, str):
        command = command.split()
    argv = command or dockerfile_cmd(DOCKERFILE.read_text())
    assert argv[0] == "prometheus", argv
    return list(argv)


def embedded_argv(home: Path, port: int) -> list[str]:
    """The embedded stack's Prometheus command line (`make up` with Prometheus installed)."""
    cfg = StackConfig.from_env(
        {"STACK_HOME": str(home), "PROMETHEUS_PORT": str(port), "PATH": os.environ["PATH"]}
    )
    return list(prometheus_component(cfg).argv)


@dataclass
class Running:
    url: str
    config: Path
    proc: subprocess.Popen[bytes]
    log: Path

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


def wait_for(what: str, check: Callable[[], bool], proc: Running, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if proc.proc.poll() is not None:
            pytest.fail(f"prometheus exited while waiting for {what}:\n{proc.tail()}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}:\n{proc.tail()}")
        time.sleep(0.3)


def ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/-/ready", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@contextlib.contextmanager
def started(argv: list[str], home: Path, port: int) -> Iterator[Running]:
    """Run the deployed command line with this test's config, data folder and port."""
    kept = [a for a in argv[1:] if not a.startswith(SWAPPED)]
    # The committed config and rules; its service targets stay empty (nothing to scrape).
    config = embedded_prometheus.write_config(CONFIG, home / "config", {})
    full = [
        prometheus_binary(),
        f"--config.file={config}",
        f"--storage.tsdb.path={home / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        *kept,
    ]
    log = home / "prometheus.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            full,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    running = Running(f"http://127.0.0.1:{port}", config, proc, log)
    try:
        wait_for("/-/ready", lambda: ready(running.url), running)
        yield running
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


@pytest.fixture(scope="module", params=["image", "embedded"])
def deployed(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Running]:
    """Prometheus as one deployment runs it: the container image's or the embedded stack's."""
    home = tmp_path_factory.mktemp(f"prometheus-{request.param}")
    port = free_port()
    argv = image_argv() if request.param == "image" else embedded_argv(home / "stack", port)
    with started(argv, home, port) as running:
        yield running


@pytest.mark.parametrize("method", ["POST", "PUT"])
@pytest.mark.parametrize("endpoint", ["/-/quit", "/-/reload"])
def test_lifecycle_endpoints_are_refused(deployed: Running, endpoint: str, method: str) -> None:
    answer = httpx.request(method, f"{deployed.url}{endpoint}", timeout=10)
    assert answer.status_code == 403, (
        f"{method} {endpoint} answered {answer.status_code} {answer.text!r}: "
        "the lifecycle API is on (--web.enable-lifecycle)"
    )
    assert "lifecycle" in answer.text.lower(), answer.text
    # Prometheus did not act on it: still running, still ready.
    assert ready(deployed.url), deployed.tail()
    assert deployed.proc.poll() is None, f"prometheus exited:\n{deployed.tail()}"


def test_sighup_reloads_an_edited_config(deployed: Running) -> None:
    """What replaces POST /-/reload: `docker compose kill -s HUP prometheus` (infra/README)."""
    config = yaml.safe_load(deployed.config.read_text())
    config.setdefault("global", {})["external_labels"] = {"reloaded_by": "sighup"}
    deployed.config.write_text(yaml.safe_dump(config, sort_keys=False))
    os.kill(deployed.proc.pid, signal.SIGHUP)

    def reloaded() -> bool:
        answer = httpx.get(f"{deployed.url}/api/v1/status/config", timeout=5)
        return "reloaded_by: sighup" in answer.json()["data"]["yaml"]

    wait_for("the SIGHUP reload", reloaded, deployed, timeout=30)
    assert ready(deployed.url)
