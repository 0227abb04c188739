"""Reading a downloaded MLflow model directory: the MLmodel file, signature and metadata.

Models arrive as MLflow `pytorch` flavor directories in the `pt2` (torch.export) format.
They are loaded with torch directly, without pyfunc or pandas; the MLmodel file gives the
instance shape (tensor signature), the classes and training statistics (metadata) and the
logged input example (the smoke test's input), and `metadata.preprocessing` how image files
become inputs (derived from the signature for models logged without it: the digits model).
"""

from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from serving_service.graph import Forward, fast_forward
from serving_service.images import Preprocessing
from serving_service.monitoring import InputStats
from serving_service.pt2_safety import UnsafeArchive, check_pt2


class ModelLoadError(Exception):
    """The version's artifacts cannot be turned into a working module."""


class UnsafeModel(ModelLoadError):
    """Loading the version would unpickle or run code from its files: refused unread."""


@dataclass(frozen=True)
class ModelArtifact:
    """What the artifact directory tells about a model, before registry metadata is added."""

    module: Forward
    instance_shape: tuple[int, ...]
    classes: tuple[str, ...] | None
    sample: np.ndarray | None
    input_stats: InputStats | None = None
    preprocessing: Preprocessing | None = None


def read_artifact(model_dir: Path) -> ModelArtifact:
    """Load the torch module and its declared input shape from an MLflow model directory."""
    mlmodel_path = model_dir / "MLmodel"
    if not mlmodel_path.is_file():
        raise ModelLoadError("the version's artifacts have no MLmodel file")
    try:
        mlmodel = yaml.safe_load(mlmodel_path.read_text())
    except yaml.YAMLError as exc:
        raise ModelLoadError(f"MLmodel is not valid YAML: {exc}") from exc
    flavor = (mlmodel.get("flavors") or {}).get("pytorch")
    if not isinstance(flavor, dict):
        raise ModelLoadError("the model has no 'pytorch' flavor; log it with mlflow.pytorch")
    pt2 = model_dir / flavor.get("model_data", "data") / "model.pt2"
    if not pt2.is_file():
        # Pickled modules need their Python class and run arbitrary code when unpickled.
        raise UnsafeModel(
            "only the 'pt2' (torch.export) serialization format is served: a pickled "
            "model runs code from its file when loaded"
        )
    instance_shape = _instance_shape(mlmodel)
    metadata = mlmodel.get("metadata") or {}
    try:
        preprocessing = Preprocessing.from_metadata(metadata.get("preprocessing"), instance_shape)
    except ValueError as exc:
        raise ModelLoadError(str(exc)) from exc
    data = pt2.read_bytes()
    try:
        check_pt2(data)  # before torch sees a byte of it; torch then loads these very bytes
    except UnsafeArchive as exc:
        raise UnsafeModel(str(exc)) from exc
    try:
        module = fast_forward(torch.export.load(io.BytesIO(data)), instance_shape)
    except Exception as exc:
        raise ModelLoadError(f"torch.export could not load model.pt2: {exc}") from exc
    return ModelArtifact(
        module=module,
        instance_shape=instance_shape,
        classes=_classes_from_metadata(mlmodel),
        sample=_input_example(model_dir, mlmodel),
        input_stats=InputStats.parse(metadata.get("input_stats"), math.prod(instance_shape)),
        preprocessing=preprocessing,
    )


def parse_classes(value: Any) -> tuple[str, ...] | None:
    """Class labels from a JSON string or list (version tag or MLmodel metadata)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            return None
    if isinstance(value, list) and value:
        return tuple(str(c) for c in value)
    return None


def _classes_from_metadata(mlmodel: dict[str, Any]) -> tuple[str, ...] | None:
    metadata = mlmodel.get("metadata") or {}
    return parse_classes(metadata.get("classes"))


def _instance_shape(mlmodel: dict[str, Any]) -> tuple[int, ...]:
    """Per-instance input shape from the tensor signature (the default model's is (1, 8, 8))."""
    raw = (mlmodel.get("signature") or {}).get("inputs")
    try:
        inputs: Any = json.loads(raw) if isinstance(raw, str) else raw
        shape = inputs[0]["tensor-spec"]["shape"]
        instance = tuple(int(d) for d in shape[1:])
    except (TypeError, KeyError, IndexError, ValueError, json.JSONDecodeError) as exc:
        raise ModelLoadError(
            "the model signature must declare one tensor input, e.g. float32 [-1, 1, 8, 8]"
        ) from exc
    if not instance or any(d < 1 for d in instance):
        raise ModelLoadError(f"the signature's instance shape {list(instance)} is not fixed")
    return instance


def _input_example(model_dir: Path, mlmodel: dict[str, Any]) -> np.ndarray | None:
    """The logged input example, used as the smoke-test input when it is present."""
    info = mlmodel.get("saved_input_example_info") or {}
    path = model_dir / info.get("artifact_path", "input_example.json")
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if isinstance(data, dict):
        data = data.get("inputs", data.get("instances"))
    try:
        return np.asarray(data, dtype=np.float32)
    except (ValueError, TypeError):
        return None
