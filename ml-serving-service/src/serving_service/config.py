"""Typed service configuration, read once from environment variables."""

from functools import lru_cache
from pathlib import Path
from typing import Literal, Self

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from serving_service.auth import TokenSet

# Secret settings that may also come from a file (`<NAME>_FILE`, as Docker and Kubernetes
# mount secrets): the file's content, trailing newline stripped, becomes the value.
SECRET_FILE_SETTINGS = ("api_token", "api_tokens", "mlflow_tracking_password", "state_url")
# What STATE_URL may start with: Redis over TCP, TLS or a Unix socket.
STATE_URL_SCHEMES = ("redis://", "rediss://", "unix://")
# Request bodies above this are refused (413) before they are read: 1,024 digits instances as
# JSON floats take about 1.5 MB, and 64 image files of a few hundred KB, base64, about 12 MB.
DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024


class Settings(BaseSettings):
    """Every knob of the service; see the README's configuration table."""

    # `model_*` field names are this service's vocabulary, not pydantic internals.
    # hide_input_in_errors: a startup error must not print the settings (tokens among them).
    model_config = SettingsConfigDict(
        extra="ignore", protected_namespaces=(), hide_input_in_errors=True
    )

    mlflow_tracking_uri: str = "http://127.0.0.1:5000"
    model_name: str = "image-classifier"
    model_alias: str = "production"
    model_poll_interval: float = Field(default=10.0, gt=0)
    # One token holding every scope (predict, feedback, admin).
    api_token: SecretStr | None = None
    api_token_file: Path | None = None
    # Named tokens with scopes: `<name>:<scope>[,<scope>...]:<token>` separated by `;` or
    # newlines (see auth.TokenSet).
    api_tokens: SecretStr | None = None
    api_tokens_file: Path | None = None
    # Handed to the MLflow client (MLFLOW_TRACKING_PASSWORD) when it comes from a file.
    mlflow_tracking_password: SecretStr | None = None
    mlflow_tracking_password_file: Path | None = None
    # Predictions without a token: only the embedded local stack sets it.
    predict_open: bool = False
    # Host header names answered (comma list, any port); "*" answers every name.
    allowed_hosts: str = "*"
    max_body_bytes: int = Field(default=DEFAULT_MAX_BODY_BYTES, ge=1024)
    environment: str = "production"
    max_batch_size: int = Field(default=1024, ge=1)
    host: str = "127.0.0.1"
    port: int = Field(default=5001, ge=1, le=65535)
    workers: int = Field(default=1, ge=1)
    # On SIGTERM: stop accepting, let in-flight requests finish for up to this long, then
    # cancel them. Keep it below the orchestrator's kill timeout (Kubernetes: 30 s).
    shutdown_grace_seconds: int = Field(default=20, ge=1)
    # One intra-op thread per worker: small models gain nothing from more, and extra
    # threads only contend with the event loop and the other workers for the cores.
    torch_threads: int = Field(default=1, ge=1)
    version_cache_size: int = Field(default=4, ge=1)
    # Seconds an explicit version that failed to load answers its error without asking
    # MLflow again (0: ask every time).
    failed_version_ttl: float = Field(default=30.0, ge=0)
    registry_timeout: float = Field(default=5.0, gt=0)
    log_level: str = "info"
    log_format: Literal["json", "text"] = "json"
    # Live monitoring: feedback outcomes per version and inputs for the drift score.
    monitor_window: int = Field(default=1000, ge=1)
    # Predictions whose ids are remembered for feedback (older ids answer 404); with
    # STATE_URL the replicas share one such window.
    feedback_memory: int = Field(default=100_000, ge=1)
    # Shared state of the replicas (prediction ids, feedback, live accuracy, reload
    # broadcast): empty keeps it in this process; `redis://:<password>@host:6379/1` shares
    # it. It holds the password, so it is a secret (STATE_URL_FILE allowed).
    state_url: SecretStr | None = None
    state_url_file: Path | None = None
    # With STATE_URL, a prediction id also expires after this long (its window still holds).
    feedback_ttl_seconds: int = Field(default=7 * 24 * 3600, ge=1)
    # Image predictions (POST /v1/predict/images): files per request, and pixels per image
    # (width x height, read from the header before decoding).
    max_images_per_request: int = Field(default=64, ge=1)
    max_image_pixels: int = Field(default=40_000_000, ge=1)
    # A forward pass expected to take longer than this runs on the scoring thread instead of
    # the event loop (measured per model at load), so a heavy model never stalls /health.
    scoring_inline_ms: float = Field(default=2.0, ge=0)
    # FastAPI's native OpenTelemetry (spans, metrics, logs to a configured provider). Off:
    # the service exports Prometheus metrics itself, and FastAPI's check for a configured
    # provider alone costs about 20 us on every request.
    otel_telemetry: bool = False

    @model_validator(mode="after")
    def _read_secret_files(self) -> Self:
        for name in SECRET_FILE_SETTINGS:
            path: Path | None = getattr(self, f"{name}_file")
            if path is None:
                continue
            if getattr(self, name) is not None:
                raise ValueError(
                    f"both {name.upper()} and {name.upper()}_FILE are set; set only one"
                )
            try:
                value = path.read_text(encoding="utf-8").rstrip("\r\n")
            except (OSError, UnicodeDecodeError) as exc:
                raise ValueError(f"{name.upper()}_FILE={path} cannot be read: {exc}") from exc
            setattr(self, name, SecretStr(value))
        return self

    @model_validator(mode="after")
    def _check_state_url(self) -> Self:
        # The value is never echoed: it holds the Redis password.
        url = self.shared_state_url
        if url is not None and not url.startswith(STATE_URL_SCHEMES):
            raise ValueError(
                "STATE_URL must be a Redis URL (redis://:<password>@<host>:6379/<db>, "
                "rediss:// or unix://), or empty to keep the state in this process"
            )
        return self

    @model_validator(mode="after")
    def _require_token_outside_local(self) -> Self:
        # A malformed API_TOKENS entry stops the service here, naming the entry.
        if self.tokens().empty and self.environment != "local":
            raise ValueError(
                "API_TOKEN is not set: set API_TOKEN or API_TOKENS (or their *_FILE) to "
                "protect the service, or set ENVIRONMENT=local for local development"
            )
        return self

    def tokens(self) -> TokenSet:
        """The configured tokens (API_TOKEN holds every scope); empty means open (local)."""
        return TokenSet.from_settings(
            self.api_token.get_secret_value() if self.api_token else None,
            self.api_tokens.get_secret_value() if self.api_tokens else None,
        )

    def host_names(self) -> frozenset[str] | None:
        """ALLOWED_HOSTS as lower-case names, or None for "*" (every name)."""
        names = {h.strip().lower() for h in self.allowed_hosts.split(",") if h.strip()}
        return None if not names or "*" in names else frozenset(names)

    @property
    def shared_state_url(self) -> str | None:
        """STATE_URL in clear text, or None when the state stays in this process."""
        url = self.state_url.get_secret_value().strip() if self.state_url else ""
        return url or None

    @property
    def token(self) -> str | None:
        """API_TOKEN in clear text, or None when it is not set."""
        return self.api_token.get_secret_value() if self.api_token else None


@lru_cache
def get_settings() -> Settings:
    """Settings from the environment, parsed once per process."""
    return Settings()
