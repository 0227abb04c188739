"""Configuration of the embedded stack: where its state lives, which ports it takes.

Every field can come from the environment (`STACK_HOME`, `MLFLOW_PORT`, ...); the
defaults put the state under `.local/` and the venvs under `.venvs/` at the repository root.
Secrets (the services' API token and the orchestrator's scoped token, Airflow's JWT secret
and its operator and viewer logins, MLflow's admin and per-service passwords) are generated
once per state folder; only Airflow's admin login defaults to admin/admin, on this local
stack alone.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path

from . import prometheus

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
    # Slots of the Airflow pool `training` (the DAGs' /v1/train submissions), as in compose.
    training_pool_slots: int = 1

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
            training_pool_slots=int(env.get("TRAINING_POOL_SLOTS", "1")),
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

    @property
    def secrets_path(self) -> Path:
        return self.home / "secrets.json"

    def secret(self, name: str) -> str:
        """A random secret generated once per state folder, so restarts keep tokens valid."""
        path = self.secrets_path
        values: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
        if name not in values:
            values[name] = secrets.token_urlsafe(24)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(values, indent=2))
            path.chmod(0o600)
        return values[name]

    def orchestrator_token(self) -> str:
        """Airflow's bearer token for the services (training: train,admin; serving:
        predict,admin); API_TOKEN (`api_token`, every scope) stays the user's."""
        return self.secret("orchestrator_token")

    def mlflow_password(self, username: str) -> str:
        """The MLflow password of one identity (infra/mlflow/mlops_mlflow_auth/identities.py)."""
        return self.secret(f"mlflow_{username}_password")

    def mlflow_auth_header(self, username: str = "viewer") -> dict[str, str]:
        """`Authorization: Basic ...` for MLflow's REST API as one identity (default: viewer)."""
        pair = f"{username}:{self.mlflow_password(username)}".encode()
        return {"Authorization": "Basic " + base64.b64encode(pair).decode()}

    def airflow_password_of(self, username: str) -> str:
        """The admin's configured password, or the generated one of the operator or viewer."""
        if username == self.airflow_user:
            return self.airflow_password
        return self.secret(f"airflow_{username}_password")
