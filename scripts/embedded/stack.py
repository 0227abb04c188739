"""The embedded stack's lifecycle: start, stop and inspect MLflow, training, serving and Airflow.

What runs is listed in components.py, where it lives in config.py, and the pid files and
process groups are kept by processes.py. Each process runs from its own subtree's venv under
`.venvs/`, binds 127.0.0.1 and keeps its state under one state folder, `.local/` by default.

Start order, for a short start on two cores: MLflow, both services and Prometheus start at
once, while Airflow's database is migrated (or found current, or copied from a template: see
databases.py); Airflow's four components start as soon as the database is ready. Nothing
waits for MLflow: the services only need it for `/ready`, and they poll it.

Standard library only: it runs with the host's python3 before any venv exists.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from .airflow_api import AirflowClient
from .components import Component, airflow_env, airflow_passwords, components, mlflow_env
from .config import StackConfig
from .databases import ManagedDatabase, installed_version
from .processes import ProcessTable, http_ok, port_in_use, tail


class Stack:
    """Start, stop and inspect the embedded stack's processes."""

    def __init__(self, cfg: StackConfig) -> None:
        self.cfg = cfg
        self.processes = ProcessTable(cfg.home)

    def pid_of(self, name: str) -> int | None:
        """The pid `up` wrote for a component, if that process is still alive."""
        return self.processes.pid_of(name)

    def log_path(self, name: str) -> Path:
        return self.processes.log_path(name)

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
        """Write the logins' passwords; bring Airflow's database to head, migrate if needed."""
        home = self.cfg.home / "airflow"
        home.mkdir(parents=True, exist_ok=True)
        passwords = home / "passwords.json"
        passwords.touch(mode=0o600)
        passwords.write_text(json.dumps(airflow_passwords(self.cfg)))
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
            # The airflow venv's own binary with constant arguments.
            done = subprocess.run(  # noqa: S603
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
        self.processes.logs.mkdir(parents=True, exist_ok=True)
        self._check_venvs()
        comps = components(self.cfg)
        if self.cfg.prometheus_skipped:
            print(f"  {'prometheus':<22} skipped: {self.cfg.prometheus_skipped}")
        to_start = []
        for comp in comps:
            pid = self.pid_of(comp.name)
            if pid is not None:
                print(f"  {comp.name:<22} already running (pid {pid})")
            elif comp.port is not None and port_in_use(comp.port):
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
        if any(c.name == "airflow-api-server" for c in comps):
            self.ensure_training_pool()
        if any(c.name == "mlflow" for c in to_start):
            self.bootstrap_mlflow()
        if fresh_mlflow:
            # MLflow migrated an empty database at its start: keep it for the next fresh start.
            mlflow_db.keep_as_template(
                [
                    "SELECT count(*) FROM runs",
                    "SELECT count(*) FROM registered_models",
                    "SELECT count(*) FROM experiments WHERE experiment_id != 0",
                ]
            )

    def ensure_training_pool(self) -> None:
        """The Airflow pool `training` the DAGs' /v1/train tasks run in (TRAINING_POOL_SLOTS).

        Without it those tasks would never leave `scheduled`; set at every start (idempotent),
        so a changed TRAINING_POOL_SLOTS applies at the next `make up`.
        """
        cfg = self.cfg
        client = AirflowClient(cfg.airflow_url, cfg.airflow_user, cfg.airflow_password)
        slots = cfg.training_pool_slots
        client.set_pool("training", slots, "concurrent training submissions (POST /v1/train)")
        print(f"  {'airflow pool training':<22} {slots} slot(s)")

    def bootstrap_mlflow(self) -> None:
        """Create MLflow's users, experiment, model and grants (idempotent; see infra/mlflow)."""
        python = self.cfg.venvs / "mlflow-server" / "bin" / "python"
        argv = [str(python), "-m", "mlops_mlflow_auth.bootstrap", "--url", self.cfg.mlflow_url]
        self.processes.logs.mkdir(parents=True, exist_ok=True)
        with self.log_path("mlflow-auth").open("ab") as log:
            # The mlflow-server venv's python, our module, the stack's own MLflow URL.
            done = subprocess.run(  # noqa: S603
                [*argv, "--wait", "60"],
                env={**os.environ, **mlflow_env(self.cfg)},
                stdout=log,
                stderr=subprocess.STDOUT,
                check=False,
                stdin=subprocess.DEVNULL,
            )
        if done.returncode != 0:
            raise SystemExit(
                "MLflow's users could not be set up; last log lines:\n"
                + tail(self.log_path("mlflow-auth"), 10)
            )
        print(f"  {'mlflow users':<22} training, orchestrator, serving, viewer (basic auth)")

    def _start(self, comp: Component) -> None:
        if comp.prepare is not None:
            comp.prepare()
        pid = self.processes.spawn(comp)
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
        names = known + [n for n in self.processes.recorded_names() if n not in known]
        if not self.processes.stop(names, grace):
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
            f"  MLflow    {cfg.mlflow_url}  (login viewer, password mlflow_viewer_password "
            f"in {cfg.secrets_path})\n"
            f"  serving   {cfg.serving_url}/docs\n"
            f"  training  {cfg.training_url}/docs\n"
            + ("" if cfg.prometheus_skipped else f"  Prometheus {cfg.prometheus_url}/targets\n")
            + f"  API token for the services' POST endpoints: {cfg.secrets_path}\n"
        )


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
