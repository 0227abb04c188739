"""The embedded stack: MLflow, training, serving and Airflow as local processes.

Every component runs from its own subtree's venv under `.venvs/`, binds 127.0.0.1 and keeps
its state (SQLite databases, artifacts, pid, log) under one state folder, `.local/` by
default. Each process is started in a session of its own, so `down` can stop exactly the
process group it started, by the pid it wrote, and nothing else.

Start order, for a short start on two cores: MLflow, both services and Prometheus start at
once, while Airflow's database is migrated (or found current, or copied from a template: see
databases.py); Airflow's four components start as soon as the database is ready. Nothing
waits for MLflow: the services only need it for `/ready`, and they poll it.

Standard library only: it runs with the host's python3 before any venv exists.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from . import prometheus
from .databases import ManagedDatabase, installed_version

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class StackConfig:
    """Where the stack lives and which ports it takes; every field can come from the env."""

    home: Path
    venvs: Path
    mlflow_port: int
    serving_port: int
    training_port: int
    airflow_port: int
    airflow_user: str
    airflow_password: str
    use_job_schedule: bool
    serving_poll_interval: float
    prometheus_port: int
    prometheus_bin: str | None
    prometheus_config: Path

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> StackConfig:
        env = dict(os.environ if env is None else env)
        return cls(
            home=Path(env.get("STACK_HOME", ROOT / ".local")).resolve(),
            venvs=Path(env.get("STACK_VENVS", ROOT / ".venvs")).resolve(),
            mlflow_port=int(env.get("MLFLOW_PORT", "5000")),
            serving_port=int(env.get("SERVING_PORT", "5001")),
            training_port=int(env.get("TRAINING_PORT", "5002")),
            airflow_port=int(env.get("AIRFLOW_PORT", "8080")),
            airflow_user=env.get("AIRFLOW_ADMIN_USER", "admin"),
            airflow_password=env.get("AIRFLOW_ADMIN_PASSWORD", "admin"),
            use_job_schedule=env.get("AIRFLOW_USE_JOB_SCHEDULE", "true").lower() == "true",
            serving_poll_interval=float(env.get("SERVING_POLL_INTERVAL", "2")),
            prometheus_port=int(env.get("PROMETHEUS_PORT", "9090")),
            prometheus_bin=shutil.which("prometheus", path=env.get("PATH")),
            prometheus_config=Path(
                env.get("PROMETHEUS_CONFIG", ROOT / "infra" / "prometheus" / "prometheus.yml")
            ).resolve(),
        )

    def url(self, port: int) -> str:
        return f"http://127.0.0.1:{port}"

    @property
    def mlflow_url(self) -> str:
        return self.url(self.mlflow_port)

    @property
    def training_url(self) -> str:
        return self.url(self.training_port)

    @property
    def serving_url(self) -> str:
        return self.url(self.serving_port)

    @property
    def airflow_url(self) -> str:
        return self.url(self.airflow_port)

    @property
    def prometheus_url(self) -> str:
        return self.url(self.prometheus_port)

    @property
    def prometheus_skipped(self) -> str | None:
        """Why this stack runs without Prometheus, or None when it runs it."""
        return prometheus.skip_reason(self.prometheus_bin, self.prometheus_config)


@dataclass
class Component:
    """One long-running process of the stack and how to tell that it is healthy."""

    name: str
    argv: list[str]
    env: dict[str, str]
    health_url: str | None
    port: int | None
    cwd: Path = field(default=ROOT)
    # Airflow's components start only once its database is migrated; the rest at once.
    needs_airflow_db: bool = False
    # Writes what the process reads at start (Prometheus' config); run just before spawning.
    prepare: Callable[[], None] | None = None
    # Requested once the health check passes, so that lazily built parts are built during
    # `up` instead of inside the first request that needs them.
    warm_up: tuple[str, ...] = ()
    # Lower CPU priority (nice) for a component nothing waits for.
    niceness: int = 0


def _secret(cfg: StackConfig, name: str) -> str:
    """A random secret generated once per state folder, so restarts keep tokens valid."""
    path = cfg.home / "secrets.json"
    values: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    if name not in values:
        values[name] = secrets.token_urlsafe(24)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values, indent=2))
        path.chmod(0o600)
    return values[name]


def _http_connection(port: int, token: str | None = None) -> str:
    """An Airflow connection in JSON form; the DAGs send its password as a Bearer token."""
    conn: dict[str, object] = {"conn_type": "http", "host": "127.0.0.1", "port": port}
    if token:
        conn["password"] = token
    return json.dumps(conn)


def airflow_env(cfg: StackConfig) -> dict[str, str]:
    """Airflow's configuration for the embedded stack, all by environment variables."""
    home = cfg.home / "airflow"
    token = _secret(cfg, "api_token")
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "airflow-orchestrator" / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "8",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(cfg.airflow_port),
        "AIRFLOW__API__BASE_URL": cfg.airflow_url,
        "AIRFLOW__API_AUTH__JWT_SECRET": _secret(cfg, "airflow_jwt_secret"),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{cfg.airflow_url}/execution/",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{cfg.airflow_user}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
        "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": str(cfg.use_job_schedule),
        # The scheduler sleeps this long after a loop with nothing to do (default 1 s), which is
        # most of the gap between one task's end and the next one's start.
        "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.25",
        # A new DAG file shows up within seconds instead of the default five minutes.
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        "AIRFLOW_CONN_TRAINING_SERVICE": _http_connection(cfg.training_port, token),
        "AIRFLOW_CONN_SERVING_SERVICE": _http_connection(cfg.serving_port, token),
        "AIRFLOW_CONN_MLFLOW": _http_connection(cfg.mlflow_port),
    }


def components(cfg: StackConfig) -> list[Component]:
    """The stack in start order: the registry first, the orchestrator last."""
    data = cfg.home
    token = _secret(cfg, "api_token")
    mlflow_bin = cfg.venvs / "mlflow-server" / "bin"
    allowed = f"127.0.0.1:{cfg.mlflow_port},localhost:{cfg.mlflow_port},localhost:*,127.0.0.1:*"
    service_env = {
        "MLFLOW_TRACKING_URI": cfg.mlflow_url,
        "API_TOKEN": token,
        "ENVIRONMENT": "local",
        "HOST": "127.0.0.1",
    }
    af_bin = cfg.venvs / "airflow-orchestrator" / "bin"
    af_env = airflow_env(cfg)
    airflow = [
        Component(
            "airflow-api-server",
            [
                str(af_bin / "airflow"),
                "api-server",
                "--host",
                "127.0.0.1",
                "--port",
                str(cfg.airflow_port),
            ],
            af_env,
            f"{cfg.airflow_url}/api/v2/monitor/health",
            cfg.airflow_port,
            needs_airflow_db=True,
            # The execution API (tasks report through it) is built at its first request:
            # 6-9 s on two cores, which the first task of a run paid, and past the task
            # client's timeout under load (the first try then failed).
            warm_up=(f"{cfg.airflow_url}/execution/health",),
        ),
    ]
    for part in ("scheduler", "dag-processor", "triggerer"):
        airflow.append(
            Component(
                f"airflow-{part}",
                [str(af_bin / "airflow"), part],
                af_env,
                None,
                None,
                needs_airflow_db=True,
                # Only deferred tasks need the triggerer, and these DAGs defer none: its
                # imports (~5 CPU-s) should not slow the components a start waits for.
                niceness=10 if part == "triggerer" else 0,
            )
        )
    return [
        Component(
            "mlflow",
            [
                str(mlflow_bin / "mlflow"),
                "server",
                "--backend-store-uri",
                f"sqlite:///{data / 'mlflow' / 'mlflow.db'}",
                "--artifacts-destination",
                str(data / "mlflow" / "artifacts"),
                "--serve-artifacts",
                "--host",
                "127.0.0.1",
                "--port",
                str(cfg.mlflow_port),
                # One worker: each one is a full import of MLflow (~5 CPU-s); requests run in
                # its thread pool, plenty for one user and the pipeline.
                "--workers",
                "1",
                "--allowed-hosts",
                allowed,
            ],
            {
                "PATH": f"{mlflow_bin}:{os.environ.get('PATH', '')}",
                # Otherwise 3.17 starts a dozen job-runner processes we do not use.
                "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
            },
            f"{cfg.mlflow_url}/health",
            cfg.mlflow_port,
        ),
        Component(
            "training",
            [str(cfg.venvs / "ml-training-service" / "bin" / "python"), "-m", "training_service"],
            {
                **service_env,
                "PORT": str(cfg.training_port),
                "DATA_DIR": str(data / "training"),
                "PYTHONPATH": str(ROOT / "ml-training-service" / "src"),
            },
            f"{cfg.training_url}/health",
            cfg.training_port,
        ),
        Component(
            "serving",
            [str(cfg.venvs / "ml-serving-service" / "bin" / "python"), "-m", "serving_service"],
            {
                **service_env,
                "PORT": str(cfg.serving_port),
                "MODEL_POLL_INTERVAL": str(cfg.serving_poll_interval),
                "PYTHONPATH": str(ROOT / "ml-serving-service" / "src"),
            },
            f"{cfg.serving_url}/health",
            cfg.serving_port,
        ),
        *([] if cfg.prometheus_skipped else [prometheus_component(cfg)]),
        *airflow,
    ]


def prometheus_component(cfg: StackConfig) -> Component:
    """Prometheus scraping the services with the repository's config (see prometheus.py)."""
    home = cfg.home / "prometheus"
    ports = {"ml-serving-service": cfg.serving_port, "ml-training-service": cfg.training_port}

    def write_config() -> None:
        prometheus.write_config(cfg.prometheus_config, home, ports)

    return Component(
        "prometheus",
        [
            str(cfg.prometheus_bin),
            f"--config.file={home / cfg.prometheus_config.name}",
            f"--storage.tsdb.path={home / 'data'}",
            f"--web.listen-address=127.0.0.1:{cfg.prometheus_port}",
        ],
        {},
        f"{cfg.prometheus_url}/-/ready",
        cfg.prometheus_port,
        prepare=write_config,
    )


class Stack:
    """Start, stop and inspect the embedded stack's processes."""

    def __init__(self, cfg: StackConfig) -> None:
        self.cfg = cfg
        self.pids = cfg.home / "pids"
        self.logs = cfg.home / "logs"

    # -- process bookkeeping -------------------------------------------------------------
    def pid_of(self, name: str) -> int | None:
        """The pid `up` wrote for a component, if that process is still alive."""
        path = self.pids / f"{name}.pid"
        if not path.exists():
            return None
        pid = int(path.read_text().strip() or 0)
        if pid <= 0 or not _alive(pid):
            path.unlink(missing_ok=True)
            return None
        return pid

    def log_path(self, name: str) -> Path:
        return self.logs / f"{name}.log"

    def _spawn(self, comp: Component) -> int:
        self.logs.mkdir(parents=True, exist_ok=True)
        self.pids.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **comp.env}
        with self.log_path(comp.name).open("ab") as log:
            log.write(f"\n--- started {time.strftime('%Y-%m-%dT%H:%M:%S')} ---\n".encode())
            proc = subprocess.Popen(
                # `nice` execs the command: the pid written below is still the component's.
                ["nice", "-n", str(comp.niceness), *comp.argv] if comp.niceness else comp.argv,
                cwd=comp.cwd,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        (self.pids / f"{comp.name}.pid").write_text(str(proc.pid))
        return proc.pid

    # -- lifecycle -------------------------------------------------------------------------
    def _database(self, path: Path, venv: str, name: str, distribution: str) -> ManagedDatabase:
        venvs = self.cfg.venvs
        version = installed_version(venvs / venv, distribution)
        return ManagedDatabase(path, venvs / ".db-templates", name, version)

    def airflow_db(self) -> ManagedDatabase:
        path = self.cfg.home / "airflow" / "airflow.db"
        return self._database(path, "airflow-orchestrator", "airflow", "apache_airflow")

    def mlflow_db(self) -> ManagedDatabase:
        path = self.cfg.home / "mlflow" / "mlflow.db"
        return self._database(path, "mlflow-server", "mlflow", "mlflow")

    def prepare_airflow(self) -> None:
        """Write the admin password; bring Airflow's database to head, migrating only if needed."""
        home = self.cfg.home / "airflow"
        home.mkdir(parents=True, exist_ok=True)
        passwords = home / "passwords.json"
        passwords.write_text(json.dumps({self.cfg.airflow_user: self.cfg.airflow_password}))
        passwords.chmod(0o600)
        db = self.airflow_db()
        if db.is_current():
            print(f"  {'airflow database':<22} at head for airflow {db.version}: no migration")
            return
        if db.start_from_template():
            print(f"  {'airflow database':<22} new, from the template of airflow {db.version}")
            return
        fresh = not db.path.exists()
        print(f"  {'airflow database':<22} migrating ...")
        airflow = self.cfg.venvs / "airflow-orchestrator" / "bin" / "airflow"
        env = {**os.environ, **airflow_env(self.cfg)}
        with self.log_path("airflow-db-migrate").open("ab") as log:
            done = subprocess.run(
                [str(airflow), "db", "migrate"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                check=False,
                stdin=subprocess.DEVNULL,
            )
        if done.returncode != 0:
            raise SystemExit(
                "`airflow db migrate` failed; the other components keep running (`make down` "
                "stops them). Last log lines:\n" + tail(self.log_path("airflow-db-migrate"), 30)
            )
        db.mark_migrated()
        if fresh:
            db.keep_as_template(["SELECT count(*) FROM dag_run"])

    def up(self, timeout: float = 180.0) -> None:
        """Start what is not running yet, then wait until every health check answers."""
        (self.cfg.home / "mlflow").mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(parents=True, exist_ok=True)
        self._check_venvs()
        comps = components(self.cfg)
        if self.cfg.prometheus_skipped:
            print(f"  {'prometheus':<22} skipped: {self.cfg.prometheus_skipped}")
        to_start = []
        for comp in comps:
            pid = self.pid_of(comp.name)
            if pid is not None:
                print(f"  {comp.name:<22} already running (pid {pid})")
            elif comp.port is not None and _port_in_use(comp.port):
                raise SystemExit(
                    f"port {comp.port} for {comp.name} is taken by a process this stack did "
                    f"not start; stop it or choose another port (see README: ports)"
                )
            else:
                to_start.append(comp)
        mlflow_db = self.mlflow_db()
        fresh_mlflow = any(c.name == "mlflow" for c in to_start) and not mlflow_db.path.exists()
        if fresh_mlflow and mlflow_db.start_from_template():
            print(f"  {'mlflow database':<22} new, from the template of mlflow {mlflow_db.version}")
            fresh_mlflow = False
        # Everything that does not need Airflow's database starts now, and runs its imports
        # while the database is migrated: on two cores that overlap is most of the start time.
        for comp in [c for c in to_start if not c.needs_airflow_db]:
            self._start(comp)
        airflow = [c for c in to_start if c.needs_airflow_db]
        if airflow:
            self.prepare_airflow()
            for comp in airflow:
                self._start(comp)
        self._wait_healthy(comps, timeout)
        if fresh_mlflow:
            # MLflow migrated an empty database at its start: keep it for the next fresh start.
            mlflow_db.keep_as_template(
                [
                    "SELECT count(*) FROM runs",
                    "SELECT count(*) FROM registered_models",
                    "SELECT count(*) FROM experiments WHERE experiment_id != 0",
                ]
            )

    def _start(self, comp: Component) -> None:
        if comp.prepare is not None:
            comp.prepare()
        pid = self._spawn(comp)
        print(f"  {comp.name:<22} started (pid {pid}), log {self.log_path(comp.name)}")

    def _check_venvs(self) -> None:
        for venv in (
            "mlflow-server",
            "ml-training-service",
            "ml-serving-service",
            "airflow-orchestrator",
        ):
            if not (self.cfg.venvs / venv / "bin" / "python").exists():
                raise SystemExit(f"venv {self.cfg.venvs / venv} is missing; run `make setup`")

    def _wait_healthy(self, comps: list[Component], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        pending = [c for c in comps if c.health_url]
        warming: list[threading.Thread] = []
        while pending:
            for comp in list(pending):
                if self.pid_of(comp.name) is None:
                    raise SystemExit(
                        f"{comp.name} exited during start; last log lines:\n"
                        + tail(self.log_path(comp.name), 30)
                    )
                if http_ok(comp.health_url or ""):
                    print(f"  {comp.name:<22} healthy at {comp.health_url}")
                    pending.remove(comp)
                    for url in comp.warm_up:
                        # In the background: the other health checks go on meanwhile.
                        warm = threading.Thread(target=http_ok, args=(url, timeout), daemon=True)
                        warm.start()
                        warming.append(warm)
            if pending and time.monotonic() > deadline:
                names = ", ".join(c.name for c in pending)
                raise SystemExit(f"not healthy after {timeout:.0f} s: {names}; see `make logs`")
            if pending:
                time.sleep(0.5)
        for warm in warming:
            warm.join(max(deadline - time.monotonic(), 1.0))

    def down(self, grace: float = 20.0) -> None:
        """Stop the process groups this stack started, newest first; SIGKILL after grace."""
        known = [c.name for c in reversed(components(self.cfg))]
        # Also whatever else has a pid file: e.g. Prometheus, started before it left PATH.
        started = sorted(p.stem for p in self.pids.glob("*.pid")) if self.pids.exists() else []
        names = known + [n for n in started if n not in known]
        running = {n: p for n in names if (p := self.pid_of(n)) is not None}
        for name, pid in running.items():
            _signal_group(pid, signal.SIGTERM)
            print(f"  {name:<22} stopping (pid {pid})")
        deadline = time.monotonic() + grace
        for name, pid in running.items():
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.2)
            if _alive(pid):
                _signal_group(pid, signal.SIGKILL)
            (self.pids / f"{name}.pid").unlink(missing_ok=True)
        if not running:
            print("  nothing to stop")

    def status(self) -> bool:
        """Print one line per component; True when everything runs and is healthy."""
        healthy = True
        for comp in components(self.cfg):
            pid = self.pid_of(comp.name)
            if pid is None:
                state, healthy = "stopped", False
            elif comp.health_url and not http_ok(comp.health_url):
                state, healthy = f"running (pid {pid}), not healthy", False
            else:
                state = f"running (pid {pid})"
            print(f"  {comp.name:<22} {state}")
        if self.cfg.prometheus_skipped:
            print(f"  {'prometheus':<22} skipped: {self.cfg.prometheus_skipped}")
        return healthy

    def print_urls(self) -> None:
        cfg = self.cfg
        print(
            f"\n  Airflow   {cfg.airflow_url}  (login {cfg.airflow_user} / "
            f"{cfg.airflow_password})\n"
            f"  MLflow    {cfg.mlflow_url}\n"
            f"  serving   {cfg.serving_url}/docs\n"
            f"  training  {cfg.training_url}/docs\n"
            + ("" if cfg.prometheus_skipped else f"  Prometheus {cfg.prometheus_url}/targets\n")
            + f"  API token for the services' POST endpoints: {cfg.home / 'secrets.json'}\n"
        )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, but not ours: treat as running so that we never reuse its port
    # A zombie child of ours counts as gone.
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    except ChildProcessError:
        return True


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, sig)


def _port_in_use(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def http_ok(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return bool(200 <= resp.status < 300)
    except (urllib.error.URLError, OSError):
        return False


def tail(path: Path, lines: int) -> str:
    if not path.exists():
        return f"(no log at {path})"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def logs_text(stack: Stack, lines: int) -> str:
    """The last lines of every component's log, each under its file name."""
    return "\n".join(
        f"==> {stack.log_path(c.name)} <==\n{tail(stack.log_path(c.name), lines)}"
        for c in components(stack.cfg)
    )


def print_logs(stack: Stack, lines: int) -> None:
    print(logs_text(stack, lines))


if __name__ == "__main__":  # pragma: no cover - use `python3 -m scripts.embedded`
    sys.exit("run it as: python3 -m scripts.embedded up|down|status|logs|demo")
