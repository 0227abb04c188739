"""The MLflow model registry as this service sees it: resolve aliases, fetch versions.

All calls block (MLflow's client is synchronous); callers run them in a worker thread so
the event loop keeps answering predictions while the registry is slow or down.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

# MLflow retries failed HTTP calls 7 times with exponential backoff (minutes in total) and
# waits 120 s per call. The alias poller retries on its own schedule, so fail fast instead.
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")

import mlflow  # noqa: E402
from mlflow.exceptions import MlflowException  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402

from serving_service.mlmodel import ModelLoadError, parse_classes, read_artifact  # noqa: E402
from serving_service.model import LoadedModel  # noqa: E402

_NOT_FOUND_CODES = {"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"}


class RegistryUnavailable(Exception):
    """MLflow could not be reached or answered with a server error."""


class VersionNotFound(Exception):
    """The alias or version does not exist in the registry."""


@dataclass(frozen=True)
class VersionInfo:
    """The registry's record of one model version."""

    name: str
    version: str
    run_id: str | None
    tags: dict[str, str]


class Registry:
    """Thin, typed access to one registered model in MLflow."""

    def __init__(self, tracking_uri: str, model_name: str, inline_budget_s: float = 0.002) -> None:
        self.tracking_uri = tracking_uri
        self.model_name = model_name
        self.inline_budget_s = inline_budget_s  # given to each model loaded (LoadedModel)
        self._client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)

    def resolve_alias(self, alias: str) -> VersionInfo:
        """The version an alias points to now."""
        try:
            mv = self._client.get_model_version_by_alias(self.model_name, alias)
        except MlflowException as exc:
            raise _classify(
                exc, f"model '{self.model_name}' has no version with alias '{alias}'"
            ) from exc
        return VersionInfo(mv.name, str(mv.version), mv.run_id, dict(mv.tags or {}))

    def get_version(self, version: str) -> VersionInfo:
        try:
            mv = self._client.get_model_version(self.model_name, version)
        except MlflowException as exc:
            raise _classify(exc, f"model '{self.model_name}' has no version '{version}'") from exc
        return VersionInfo(mv.name, str(mv.version), mv.run_id, dict(mv.tags or {}))

    def load(self, info: VersionInfo) -> LoadedModel:
        """Download a version's artifacts and load them; the download is deleted afterwards."""
        try:
            uri = self._client.get_model_version_download_uri(info.name, info.version)
            metrics = self._client.get_run(info.run_id).data.metrics if info.run_id else {}
        except MlflowException as exc:
            raise _classify(exc, f"version '{info.version}' of '{info.name}' not found") from exc
        workdir = tempfile.mkdtemp(prefix="serving-model-")
        try:
            try:
                local = mlflow.artifacts.download_artifacts(
                    artifact_uri=uri, dst_path=workdir, tracking_uri=self.tracking_uri
                )
            except MlflowException as exc:
                raise _classify(exc, f"artifacts of version '{info.version}' not found") from exc
            except OSError as exc:
                raise RegistryUnavailable(f"downloading artifacts failed: {exc}") from exc
            artifact = read_artifact(Path(local))
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        classes = parse_classes(info.tags.get("classes")) or artifact.classes
        if classes is None:
            raise ModelLoadError(
                "the version declares no classes (version tag 'classes' or metadata.classes)"
            )
        return LoadedModel(
            name=info.name,
            version=info.version,
            run_id=info.run_id,
            module=artifact.module,
            instance_shape=artifact.instance_shape,
            classes=classes,
            metrics=dict(metrics),
            sample=artifact.sample,
            input_stats=artifact.input_stats,
            preprocessing=artifact.preprocessing,
            inline_budget_s=self.inline_budget_s,
        )


def _classify(exc: MlflowException, not_found: str) -> Exception:
    """Tell a missing alias/version apart from a registry that is down."""
    if exc.error_code in _NOT_FOUND_CODES:
        return VersionNotFound(not_found)
    return RegistryUnavailable(f"MLflow registry unreachable: {exc.message}")
