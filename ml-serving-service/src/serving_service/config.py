"""Typed service configuration, read once from environment variables."""

from functools import lru_cache
from typing import Literal, Self

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every knob of the service; see the README's configuration table."""

    # `model_*` field names are this service's vocabulary, not pydantic internals.
    model_config = SettingsConfigDict(extra="ignore", protected_namespaces=())

    mlflow_tracking_uri: str = "http://127.0.0.1:5000"
    model_name: str = "image-classifier"
    model_alias: str = "production"
    model_poll_interval: float = Field(default=10.0, gt=0)
    api_token: SecretStr | None = None
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
    # Predictions whose ids are remembered for feedback (older ids answer 404).
    feedback_memory: int = Field(default=100_000, ge=1)
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
    def _require_token_outside_local(self) -> Self:
        token = self.api_token.get_secret_value() if self.api_token else ""
        if not token and self.environment != "local":
            raise ValueError(
                "API_TOKEN is not set: set API_TOKEN to protect POST /v1/model/reload, "
                "or set ENVIRONMENT=local for local development"
            )
        return self

    @property
    def token(self) -> str | None:
        """The API token in clear text, or None when auth is disabled (local only)."""
        return self.api_token.get_secret_value() if self.api_token else None


@lru_cache
def get_settings() -> Settings:
    """Settings from the environment, parsed once per process."""
    return Settings()
