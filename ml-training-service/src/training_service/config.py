"""Service configuration, read once from environment variables (pydantic-settings)."""

from functools import lru_cache
from pathlib import Path
from typing import Literal, Self

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every knob of the service; the README documents each one."""

    model_config = SettingsConfigDict(env_file=None, extra="ignore", protected_namespaces=())

    mlflow_tracking_uri: str = "http://127.0.0.1:5000"
    # SecretStr: never printed in reprs, logs or validation errors.
    api_token: SecretStr | None = None
    environment: str = "production"
    model_name: str = "image-classifier"
    experiment: str = "image-classification"
    data_dir: Path = Path("./data")
    max_concurrent_jobs: int = Field(default=1, ge=1, le=32)
    max_queued_jobs: int = Field(default=8, ge=0, le=10_000)
    host: str = "127.0.0.1"
    port: int = Field(default=5002, ge=1, le=65535)
    # Intra-op threads for torch. One thread keeps a core free for the event loop on small
    # machines and is about as fast as two for this tiny CNN (see benchmarks/).
    torch_threads: int = Field(default=1, ge=1, le=256)
    # "process": train in worker processes (no GIL contention with the API);
    # "thread": train in the service process (lighter, but slows requests while training).
    job_executor: Literal["process", "thread"] = "process"
    log_level: str = "info"
    # "json": one JSON object per line (for log shippers); "text": for reading in a terminal.
    log_format: Literal["json", "text"] = "json"

    @model_validator(mode="after")
    def _require_token_outside_local(self) -> Self:
        # Fail fast: an unauthenticated training API must be an explicit local-only choice.
        if not self.token and self.environment != "local":
            raise ValueError(
                "API_TOKEN is not set: set API_TOKEN to a secret, or set ENVIRONMENT=local "
                "to run without authentication on a development machine"
            )
        return self

    @property
    def token(self) -> str | None:
        """The API token in clear text, or None when auth is disabled (local only)."""
        return self.api_token.get_secret_value() if self.api_token else None

    @property
    def datasets_dir(self) -> Path:
        return self.data_dir / "datasets"

    @property
    def jobs_db_path(self) -> Path:
        return self.data_dir / "jobs.sqlite3"


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings (cached so every request sees the same object)."""
    return Settings()
