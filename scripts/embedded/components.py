"""What the embedded stack runs: one `Component` per process, in start order.

MLflow (SQLite and local artifacts), the training and serving services, Prometheus when it
is installed, and Airflow's four components (LocalExecutor, SQLite). Each component says
how it is started, with which environment, and how to tell it is healthy; `stack.py` starts
and stops them. Every process binds 127.0.0.1.

MLflow runs its basic-auth app with our rules (infra/mlflow/mlops_mlflow_auth): each service
logs in as its own MLflow user, and Airflow knows an admin, an operator and a viewer.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from . import prometheus
from .config import ROOT, StackConfig


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


# Airflow's logins besides the admin, with their simple-auth-manager role: the operator
# triggers and clears runs (role "user": DAGs, not connections, variables or pools), the
# viewer only reads.
AIRFLOW_ROLES = {"operator": "user", "viewer": "viewer"}
MLFLOW_AUTH = ROOT / "infra" / "mlflow"


def _http_connection(port: int, token: str | None = None, login: str | None = None) -> str:
    """An Airflow connection in JSON form; the DAGs send its password as a Bearer token, or
    with a login as basic auth (the MLflow connection)."""
    conn: dict[str, object] = {"conn_type": "http", "host": "127.0.0.1", "port": port}
    if login:
        conn["login"] = login
    if token:
        conn["password"] = token
    return json.dumps(conn)


def airflow_users(cfg: StackConfig) -> str:
    """`[core] simple_auth_manager_users`: the admin, the operator and the viewer."""
    users = {cfg.airflow_user: "admin", **AIRFLOW_ROLES}
    return ",".join(f"{name}:{role}" for name, role in users.items())


def airflow_passwords(cfg: StackConfig) -> dict[str, str]:
    """The simple auth manager's passwords file: every login and its password."""
    names = [cfg.airflow_user, *AIRFLOW_ROLES]
    return {name: cfg.airflow_password_of(name) for name in names}


def mlflow_env(cfg: StackConfig) -> dict[str, str]:
    """The basic-auth app's settings; the users are created by `stack.py` once it answers."""
    home = cfg.home / "mlflow"
    return {
        "PYTHONPATH": str(MLFLOW_AUTH),
        "MLFLOW_AUTH_CONFIG_PATH": str(home / "basic_auth.ini"),
        "MLFLOW_AUTH_DATABASE_URI": f"sqlite:///{home / 'basic_auth.db'}",
        "MLFLOW_AUTH_ADMIN_PASSWORD": cfg.mlflow_password("admin"),
        "MLFLOW_FLASK_SERVER_SECRET_KEY": cfg.secret("mlflow_flask_secret_key"),
        "MLFLOW_AUTH_BOOTSTRAP": "false",
        **{
            f"MLFLOW_{name.upper()}_PASSWORD": cfg.mlflow_password(name)
            for name in ("training", "orchestrator", "serving", "viewer")
        },
    }


def mlflow_login(cfg: StackConfig, username: str) -> dict[str, str]:
    """What the MLflow client reads to log in as `username`."""
    return {
        "MLFLOW_TRACKING_USERNAME": username,
        "MLFLOW_TRACKING_PASSWORD": cfg.mlflow_password(username),
    }


def airflow_env(cfg: StackConfig) -> dict[str, str]:
    """Airflow's configuration for the embedded stack, all by environment variables."""
    home = cfg.home / "airflow"
    token = cfg.orchestrator_token()  # scoped: the services' API_TOKENS entry `orchestrator`
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "airflow-orchestrator" / "dags"),
        # The triggerer imports the DAGs' trigger (orchestration.training_jobs) by classpath
        # and, unlike the dag-processor and the workers, does not put the DAGs on sys.path.
        "PYTHONPATH": str(ROOT / "airflow-orchestrator" / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "8",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(cfg.airflow_port),
        "AIRFLOW__API__BASE_URL": cfg.airflow_url,
        "AIRFLOW__API_AUTH__JWT_SECRET": cfg.secret("airflow_jwt_secret"),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{cfg.airflow_url}/execution/",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": airflow_users(cfg),
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
        "AIRFLOW_CONN_MLFLOW": _http_connection(
            cfg.mlflow_port, cfg.mlflow_password("orchestrator"), login="orchestrator"
        ),
    }


def components(cfg: StackConfig) -> list[Component]:
    """The stack in start order: the registry first, the orchestrator last."""
    data = cfg.home
    token = cfg.secret("api_token")
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
            )
        )
    return [
        Component(
            "mlflow",
            [
                # `mlflow server --app-name basic-auth` with our auth config (launch.py).
                str(mlflow_bin / "python"),
                "-m",
                "mlops_mlflow_auth.launch",
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
                **mlflow_env(cfg),
            },
            f"{cfg.mlflow_url}/health",
            cfg.mlflow_port,
        ),
        Component(
            "training",
            [str(cfg.venvs / "ml-training-service" / "bin" / "python"), "-m", "training_service"],
            {
                **service_env,
                **mlflow_login(cfg, "training"),
                "API_TOKENS": f"orchestrator:train,admin:{cfg.orchestrator_token()}",
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
                **mlflow_login(cfg, "serving"),
                "API_TOKENS": f"orchestrator:predict,admin:{cfg.orchestrator_token()}",
                # The embedded local default only: predictions need no token (never in
                # docker-compose.yml or Kubernetes); feedback and reload still need API_TOKEN.
                "PREDICT_OPEN": "true",
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
