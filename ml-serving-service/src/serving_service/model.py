"""A registered model version loaded into memory: input adaptation, prediction, smoke test.

Models arrive as MLflow `pytorch` flavor directories in the `pt2` (torch.export) format.
They are loaded with torch directly, without pyfunc or pandas, so the hot path is a single
graph call on a float32 tensor.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch.export import ExportedProgram
from torch.export.graph_signature import InputKind, OutputKind

from serving_service.kernels import rows_where_faster, same_outputs, small_batch_graph
from serving_service.monitoring import InputStats

log = logging.getLogger(__name__)

# A model as the hot path sees it: float32 batch in, logits (or a tuple holding them) out.
Forward = Callable[[torch.Tensor], Any]


class ModelLoadError(Exception):
    """The version's artifacts cannot be turned into a working module."""


class SmokeTestError(Exception):
    """The version loaded but does not produce valid predictions on a sample input."""


class InvalidInput(ValueError):
    """The request's instances cannot be fed to the model; the message says how to fix it."""


@dataclass(frozen=True)
class ModelArtifact:
    """What the artifact directory tells about a model, before registry metadata is added."""

    module: Forward
    instance_shape: tuple[int, ...]
    classes: tuple[str, ...] | None
    sample: np.ndarray | None
    input_stats: InputStats | None = None


@dataclass(frozen=True, slots=True)
class Scores:
    """Rows of a model's output: raw logits, softmax probabilities and class indices."""

    logits: np.ndarray
    probabilities: np.ndarray
    indices: np.ndarray

    def labels(self, classes: tuple[str, ...]) -> list[str]:
        return [classes[i] for i in self.indices.tolist()]

    def rows(self, start: int, end: int) -> Scores:
        return Scores(
            self.logits[start:end], self.probabilities[start:end], self.indices[start:end]
        )


@dataclass
class LoadedModel:
    """One registered version ready to answer; immutable once published to a slot."""

    name: str
    version: str
    run_id: str | None
    module: Forward
    instance_shape: tuple[int, ...]
    classes: tuple[str, ...]
    metrics: dict[str, float] = field(default_factory=dict)
    sample: np.ndarray | None = None
    # Training-data statistics logged with the model: the reference of the drift score.
    input_stats: InputStats | None = None
    loaded_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def __post_init__(self) -> None:
        self.instance_size = math.prod(self.instance_shape)
        self._squeezed = tuple(d for d in self.instance_shape if d != 1)

    def to_batch(self, instances: Any) -> np.ndarray:
        """Turn a JSON list of instances into a float32 (N, *instance_shape) array.

        Each instance may have the signature's shape, that shape without its size-1 axes
        (an 8x8 image for a (1, 8, 8) signature) or be flat.
        """
        if not isinstance(instances, list):
            raise InvalidInput("'instances' must be a list of images")
        if not instances:
            raise InvalidInput("'instances' is empty: send at least one image")
        try:
            batch = np.asarray(instances, dtype=np.float32)
        except (ValueError, TypeError) as exc:
            raise InvalidInput(
                f"instances must be numbers with the same shape each, {self.expected_shapes()}"
                f" ({exc})"
            ) from exc
        return self.reshape_batch(batch)

    def reshape_batch(self, batch: np.ndarray) -> np.ndarray:
        """Validate an (N, ...) float32 array and reshape it to the model's input."""
        if batch.ndim < 2:
            raise InvalidInput(f"each instance must be an image, {self.expected_shapes()}")
        got = batch.shape[1:]
        if got != self.instance_shape:
            same_size = math.prod(got) == self.instance_size
            if not same_size or (
                len(got) > 1 and tuple(d for d in got if d != 1) != self._squeezed
            ):
                raise InvalidInput(
                    f"each instance must have shape {self.expected_shapes()}; got {list(got)}"
                )
            batch = batch.reshape((batch.shape[0], *self.instance_shape))
        if not np.isfinite(batch).all():
            raise InvalidInput("instances contain non-finite numbers (NaN or infinity)")
        return batch

    def expected_shapes(self) -> str:
        shapes = [list(self.instance_shape)]
        if list(self._squeezed) not in shapes:
            shapes.append(list(self._squeezed))
        return " or ".join(str(s) for s in shapes) + f" or flat {self.instance_size}"

    def logits(self, batch: np.ndarray) -> torch.Tensor:
        """Raw model output for a batch already shaped by `reshape_batch`."""
        with torch.inference_mode():
            return self._forward(batch)

    def scores(self, batch: np.ndarray) -> Scores:
        """Logits, softmax probabilities and class indices of a shaped batch, as numpy.

        The softmax runs in numpy: on the few rows of a request, each torch call costs
        several microseconds of dispatch, more than the arithmetic.
        """
        with torch.inference_mode():
            out = self._forward(batch)
        # orjson serializes only C-contiguous arrays; a model may return a transposed view.
        logits = np.ascontiguousarray(out.numpy())
        shifted = logits - logits.max(axis=1, keepdims=True)
        exp = np.exp(shifted)
        probs = exp / exp.sum(axis=1, keepdims=True)
        return Scores(logits, probs, shifted.argmax(axis=1))

    def classify(self, batch: np.ndarray) -> tuple[list[str], np.ndarray, np.ndarray]:
        """Labels, class indices and softmax probabilities for a shaped batch."""
        scores = self.scores(batch)
        return scores.labels(self.classes), scores.indices, scores.probabilities

    def _forward(self, batch: np.ndarray) -> torch.Tensor:
        out = self.module(torch.from_numpy(batch))
        if isinstance(out, tuple | list):
            out = out[0]
        return out

    def smoke_test(self) -> None:
        """Predict on the logged sample (or a synthetic one) and on a single instance.

        Refuses a version whose output has the wrong shape or is not finite, and one
        exported with a fixed batch size, before it ever reaches a client.
        """
        if self.sample is not None and len(self.sample) >= 2:
            sample = self.reshape_batch(self.sample.astype(np.float32))
        else:
            rng = np.random.default_rng(0)
            sample = rng.random((2, *self.instance_shape), dtype=np.float32)
        for batch in (sample, sample[:1]):
            try:
                out = self.logits(np.ascontiguousarray(batch))
            except Exception as exc:
                raise SmokeTestError(
                    f"prediction on a sample batch of {len(batch)} failed: {exc}"
                ) from exc
            expected = (len(batch), len(self.classes))
            if tuple(out.shape) != expected:
                raise SmokeTestError(
                    f"output shape {list(out.shape)} for a batch of {len(batch)}, "
                    f"expected {list(expected)} ({len(self.classes)} classes)"
                )
            if not torch.isfinite(out).all():
                raise SmokeTestError("the model returns non-finite outputs on a sample input")


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
        raise ModelLoadError("only the 'pt2' (torch.export) serialization format is served")
    instance_shape = _instance_shape(mlmodel)
    try:
        module = fast_forward(torch.export.load(str(pt2)), instance_shape)
    except Exception as exc:
        raise ModelLoadError(f"torch.export could not load model.pt2: {exc}") from exc
    return ModelArtifact(
        module=module,
        instance_shape=instance_shape,
        classes=_classes_from_metadata(mlmodel),
        sample=_input_example(model_dir, mlmodel),
        input_stats=InputStats.parse(
            (mlmodel.get("metadata") or {}).get("input_stats"), math.prod(instance_shape)
        ),
    )


class LiftedGraph:
    """An exported program's graph called directly, its weights passed as leading arguments.

    `ExportedProgram.module()` wraps the same graph in pytree flattening and shape guards,
    which cost more than the forward pass of a small CNN (about 230 us against 100 us per
    call for the default model). Shapes are validated by `LoadedModel.reshape_batch` instead,
    and the smoke test runs the graph at batch sizes 1 and 2 before a version is served.
    Batches of up to `small_rows` rows run a copy with small-batch convolutions
    (`kernels.py`), when timing at load showed it faster.
    """

    def __init__(self, program: ExportedProgram) -> None:
        self._graph = program.graph_module
        self._small_graph: torch.fx.GraphModule | None = None
        self.small_rows = 0
        weights = {**program.state_dict, **program.constants}
        self._leading = tuple(
            weights[spec.target]
            for spec in program.graph_signature.input_specs
            if spec.kind != InputKind.USER_INPUT and spec.target is not None
        )

    def __call__(self, batch: torch.Tensor) -> Any:
        if len(batch) <= self.small_rows and self._small_graph is not None:
            return self._small_graph(*self._leading, batch)
        return self._graph(*self._leading, batch)

    @property
    def graph(self) -> torch.fx.GraphModule:
        return self._graph

    def use_small_batch_graph(self, graph: torch.fx.GraphModule, rows: int) -> None:
        """Run batches of up to `rows` rows through `graph` (same signature, same outputs)."""
        self._small_graph, self.small_rows = graph, rows

    def tune(self, instance_shape: tuple[int, ...]) -> None:
        """Use the small-batch convolutions up to the batch size where they measured faster."""
        small = small_batch_graph(self._graph)
        if small is None:
            return

        def default(batch: torch.Tensor) -> Any:
            return self._graph(*self._leading, batch)

        def candidate(batch: torch.Tensor) -> Any:
            return small(*self._leading, batch)

        try:
            if not same_outputs(default, candidate, instance_shape):
                log.warning("small-batch convolutions disagree with the exported graph; not used")
                return
            rows = rows_where_faster(default, candidate, instance_shape)
        except Exception as exc:  # an optimization must never cost a valid model its load
            log.warning("small-batch convolutions not used: %s", exc)
            return
        if rows:
            self.use_small_batch_graph(small, rows)
        log.info("small-batch convolutions used up to %d rows", rows)


def fast_forward(program: ExportedProgram, instance_shape: tuple[int, ...]) -> Forward:
    """The lifted (and tuned) graph when the program is a plain single-input function.

    Anything else (several inputs, buffers mutated in place, tokens) keeps the safe
    `program.module()`.
    """
    specs = program.graph_signature
    kinds = [spec.kind for spec in specs.input_specs]
    plain = (
        kinds.count(InputKind.USER_INPUT) == 1
        and kinds[-1] == InputKind.USER_INPUT
        and all(
            k in (InputKind.PARAMETER, InputKind.BUFFER, InputKind.CONSTANT_TENSOR)
            for k in kinds[:-1]
        )
        and [spec.kind for spec in specs.output_specs] == [OutputKind.USER_OUTPUT]
    )
    if plain:
        lifted = LiftedGraph(program)
        lifted.tune(instance_shape)
        return lifted
    module: Forward = program.module()
    return module


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
