"""Service configuration, read once from environment variables (pydantic-settings)."""

from functools import lru_cache
from pathlib import Path
from typing import Literal, Self

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from training_service.auth import Tokens

# Secret settings that may also come from a file (`<NAME>_FILE`, as Docker and Kubernetes
# mount secrets): the file's content, trailing newline stripped, becomes the value.
SECRET_FILE_SETTINGS = ("api_token", "api_tokens", "mlflow_tracking_password", "database_url")
# JSON request bodies above this are refused (413) unread. The largest valid JSON body, a
# `generated` dataset request or a training request, is well under 1 KB; archive uploads
# have their own cap (MAX_ARCHIVE_BYTES).
DEFAULT_MAX_BODY_BYTES = 1 << 20


class Settings(BaseSettings):
    """Every knob of the service; the README documents each one."""

    # hide_input_in_errors: a validation error never repeats a value (tokens, DATABASE_URL).
    model_config = SettingsConfigDict(
        env_file=None, extra="ignore", protected_namespaces=(), hide_input_in_errors=True
    )

    mlflow_tracking_uri: str = "http://127.0.0.1:5000"
    # SecretStr: never printed in reprs, logs or validation errors.
    # One token holding every scope (train, admin).
    api_token: SecretStr | None = None
    api_token_file: Path | None = None
    # Named tokens with scopes, `<name>:<scope>[,<scope>...]:<token>` separated by `;` or
    # newlines (see auth.py), e.g. `orchestrator:train,admin:<token>`.
    api_tokens: SecretStr | None = None
    api_tokens_file: Path | None = None
    # MLflow's basic-auth password: from a file, it is handed to the MLflow client as
    # MLFLOW_TRACKING_PASSWORD at start-up.
    mlflow_tracking_password: SecretStr | None = None
    mlflow_tracking_password_file: Path | None = None
    # Host header names answered (comma list, any port); "*" answers every name.
    allowed_hosts: str = "*"
    # Request bodies above this are a 413 before they are read (archive uploads: see below).
    max_body_bytes: int = Field(default=DEFAULT_MAX_BODY_BYTES, ge=1024)
    environment: str = "production"
    model_name: str = "image-classifier"
    experiment: str = "image-classification"
    data_dir: Path = Path("./data")
    # The job store: empty keeps jobs in DATA_DIR/jobs.sqlite3 (one replica); a Postgres URL
    # (postgresql+psycopg://user:password@host:5432/training) lets several replicas share
    # them. It holds a password: a secret, also readable from DATABASE_URL_FILE.
    database_url: SecretStr | None = None
    database_url_file: Path | None = None
    # Postgres store: a replica renews the lease on its running jobs every third of this; a
    # job whose lease ran out (its replica died) is resumed or failed by another replica.
    job_lease_seconds: float = Field(default=30.0, ge=1, le=3600)
    # How often idle dispatchers look for jobs queued by other replicas (Postgres store).
    job_poll_seconds: float = Field(default=1.0, gt=0, le=60)
    # Dataset limits (POST /v1/datasets): over one of them is a 413 naming the setting.
    max_archive_bytes: int = Field(default=1 << 30, ge=1)  # an uploaded archive, as sent
    max_archive_uncompressed_bytes: int = Field(default=4 << 30, ge=1)  # its members, unpacked
    max_dataset_images: int = Field(default=200_000, ge=10)  # images in one dataset
    max_image_pixels: int = Field(default=40_000_000, ge=64)  # width x height of one image
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
    # "local": train on this machine (JOB_EXECUTOR above); "ray": on the Ray cluster at
    # RAY_ADDRESS (Ray Train, num_workers per job; needs the `ray` extra, see the README).
    training_executor: Literal["local", "ray"] = "local"
    ray_address: str = ""
    # DataLoader worker processes reading batches per job. 0 reads in the training process:
    # a batch read (pread of uint8 rows + /255) takes well under 1% of a training step here,
    # so workers would add processes, memory and start-up for nothing on 2 cores; raise it
    # for large images decoded from slow disks or many cores (see the README benchmark).
    dataloader_workers: int = Field(default=0, ge=0, le=64)
    # MLflow's own client variables, with bounds for an outage: 1 retry and 10 s per request
    # make a job fail within about 45 s of MLflow going away (MLflow's defaults, 7 retries
    # with exponential backoff and 120 s, stall it for minutes). Passed to every process
    # that talks to MLflow (see mlflow_client.py).
    mlflow_http_request_max_retries: int = Field(default=1, ge=0, le=10)
    mlflow_http_request_timeout: int = Field(default=10, ge=1, le=600)
    mlflow_http_request_backoff_factor: int = Field(default=1, ge=0, le=120)
    # How often MLflow runs left RUNNING by an outage or a crash are retried until ended.
    mlflow_run_close_retry_seconds: float = Field(default=15.0, gt=0, le=3600)
    # uvicorn's grace on SIGTERM: in-flight requests may finish for this long, then the
    # process exits (stay below the orchestrator's kill timeout, e.g. Kubernetes' 30 s).
    shutdown_grace_seconds: int = Field(default=20, ge=1, le=3600)
    log_level: str = "info"
    # "json": one JSON object per line (for log shippers); "text": for reading in a terminal.
    log_format: Literal["json", "text"] = "json"

    @model_validator(mode="after")
    def _read_secret_files(self) -> Self:
        for name in SECRET_FILE_SETTINGS:
            path: Path | None = getattr(self, f"{name}_file")
            if path is None:
                continue
            variable = name.upper()
            if getattr(self, name) is not None:
                raise ValueError(f"both {variable} and {variable}_FILE are set: set only one")
            try:
                value = path.read_text(encoding="utf-8").rstrip("\r\n")
            except (OSError, UnicodeDecodeError) as exc:
                reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
                raise ValueError(f"{variable}_FILE={path} cannot be read ({reason})") from None
            setattr(self, name, SecretStr(value))
        return self

    @model_validator(mode="after")
    def _require_token_outside_local(self) -> Self:
        # A malformed API_TOKENS entry stops the service here, naming the entry (not its token).
        # Fail fast: an unauthenticated training API must be an explicit local-only choice.
        if self.tokens().empty and self.environment != "local":
            raise ValueError(
                "API_TOKEN is not set: set API_TOKEN or API_TOKENS (or their *_FILE) to a "
                "secret, or set ENVIRONMENT=local to run without authentication on a "
                "development machine"
            )
        return self

    @model_validator(mode="after")
    def _check_database_url(self) -> Self:
        # Say what is wrong without repeating the URL: it holds a password.
        url = self.database_url.get_secret_value() if self.database_url else ""
        if url and url.split("://", 1)[0].split("+", 1)[0] not in {"postgresql", "postgres"}:
            raise ValueError(
                "DATABASE_URL must be a Postgres URL, postgresql+psycopg://user:password@"
                "host:5432/database (or empty for the SQLite job store in DATA_DIR)"
            )
        return self

    @property
    def job_database_url(self) -> str | None:
        """DATABASE_URL in clear text, or None: the SQLite job store."""
        return self.database_url.get_secret_value() if self.database_url else None

    def tokens(self) -> Tokens:
        """The configured tokens (API_TOKEN holds every scope); empty means open (local)."""
        return Tokens.parse(
            self.api_token.get_secret_value() if self.api_token else None,
            self.api_tokens.get_secret_value() if self.api_tokens else None,
        )

    def host_names(self) -> frozenset[str] | None:
        """ALLOWED_HOSTS as lower-case names, or None for "*" (every name)."""
        names = {h.strip().lower() for h in self.allowed_hosts.split(",") if h.strip()}
        return None if not names or "*" in names else frozenset(names)

    @property
    def token(self) -> str | None:
        """API_TOKEN in clear text, or None when it is not set."""
        return self.api_token.get_secret_value() if self.api_token else None

    @property
    def mlflow_client_environment(self) -> dict[str, str]:
        """MLflow's HTTP client variables for the processes that talk to MLflow."""
        return {
            "MLFLOW_HTTP_REQUEST_MAX_RETRIES": str(self.mlflow_http_request_max_retries),
            "MLFLOW_HTTP_REQUEST_TIMEOUT": str(self.mlflow_http_request_timeout),
            "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": str(self.mlflow_http_request_backoff_factor),
        }

    @property
    def datasets_dir(self) -> Path:
        return self.data_dir / "datasets"

    @property
    def dataset_keys_dir(self) -> Path:
        return self.datasets_dir / "idempotency-keys"

    @property
    def checkpoints_dir(self) -> Path:
        """Per-job training checkpoints (deleted when the job ends)."""
        return self.data_dir / "checkpoints"

    @property
    def jobs_db_path(self) -> Path:
        return self.data_dir / "jobs.sqlite3"


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings (cached so every request sees the same object)."""
    return Settings()
