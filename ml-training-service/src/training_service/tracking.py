"""The MLflow tracking run of a job: params, metrics, artifacts and the logged model.

One run per job. The model is logged with mlflow.pytorch.log_model in the pt2 (torch.export)
format, so loading it needs neither this package nor the model class: mlflow.pyfunc and
`mlflow models serve` can load it anywhere. Registering that model as a version happens in
the same log_model call; its tags and alias are registry.py's.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from io import BytesIO

import mlflow
import numpy as np
import torch
from mlflow.data.meta_dataset import MetaDataset
from mlflow.data.sources import LocalArtifactDatasetSource  # type: ignore[attr-defined]
from mlflow.models import infer_signature
from mlflow.types import Schema, TensorSpec
from mlflow.utils import logging_utils as mlflow_logging_utils
from PIL import Image

from training_service import __version__
from training_service.data import Dataset
from training_service.mlflow_client import MlflowUnavailableError, is_mlflow_outage
from training_service.params import EpochResult, TrainingCancelled, TrainingParams
from training_service.plots import confusion_matrix_png, training_curve_png
from training_service.train import TrainingResult

log = logging.getLogger(__name__)


class _PrintsToLog:
    """Stands in for MLflow's stderr stream: each printed line becomes a log record.

    MLflow `print`s some events ("Created version '3' of model ...") straight to stderr;
    as records they get the service's format and the job's request id.
    """

    enabled = True  # MLflow's enable_logging()/disable_logging() toggle this

    def __init__(self) -> None:
        self._pending = threading.local()  # print() writes the text and "\n" separately
        self._log = logging.getLogger("mlflow")

    def write(self, text: str) -> int:
        if self.enabled:
            *lines, rest = (getattr(self._pending, "text", "") + text).split("\n")
            self._pending.text = rest
            for line in lines:
                if line.strip():
                    self._log.info(line)
        return len(text)

    def flush(self) -> None:
        pass


def route_mlflow_prints_to_log() -> None:
    """Send MLflow's printed events through logging (call once per process)."""
    mlflow_logging_utils.MLFLOW_LOGGING_STREAM = _PrintsToLog()  # type: ignore[assignment]


def experiment_id_for(name: str) -> str:
    """The id of an experiment, created on first use."""
    experiment = mlflow.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    return mlflow.create_experiment(name)


class TrackedRun:
    """Logging calls for the active run of one training job."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id

    def log_setup(self, dataset: Dataset, params: TrainingParams, tags: dict[str, str]) -> None:
        info = dataset.info
        mlflow.log_params(
            {
                "epochs": params.epochs,
                "batch_size": params.batch_size,
                "learning_rate": params.learning_rate,
                "seed": params.seed,
                "architecture": params.architecture,
                "optimizer": params.optimizer,
                "weight_decay": params.weight_decay,
                # Spelled as the MLproject's parameters: `mlflow run` logs those first, and
                # MLflow refuses to change a param's value ("False" after "false").
                "augmentation": str(params.augmentation).lower(),
                "early_stopping_patience": str(params.early_stopping_patience).lower(),
                "scheduler": "OneCycleLR",
                "dataset_id": info.dataset_id,
                "n_train": info.n_train,
                "n_test": info.n_test,
                "image_size": info.image_size,
                "channels": info.channels,
            }
        )
        mlflow.set_tags(
            {
                "dataset_sha256": info.sha256,
                "dataset_source": info.source,
                "dataset_id": info.dataset_id,
                "image_size": str(info.image_size),
                "channels": str(info.channels),
                "service_version": __version__,
                **tags,
            }
        )
        self.log_dataset(dataset)

    def log_dataset(self, dataset: Dataset) -> None:
        """The dataset as a run input (MLflow's UI links runs to their data), described by
        its id, hash and tensor shape: nothing is read, however large the dataset is."""
        info = dataset.info
        shape = (-1, info.channels, info.image_size, info.image_size)
        mlflow.log_input(
            MetaDataset(  # type: ignore[abstract]  # MLflow's own class, instantiable
                LocalArtifactDatasetSource(f"datasets/{info.dataset_id}"),
                name=info.dataset_id,
                digest=info.sha256[:32],
                schema=Schema([TensorSpec(np.dtype(np.float32), shape, name="image")]),
            ),
            context="training",
            tags={"sha256": info.sha256, "source": info.source},
        )

    def logged_epochs(self) -> set[int]:
        """Epochs (steps) whose metrics the run already has (a resumed job logs the rest)."""
        history = mlflow.MlflowClient().get_metric_history(self.run_id, "test_accuracy")
        return {m.step for m in history}

    def log_epoch(self, result: EpochResult) -> None:
        mlflow.log_metrics(
            {
                "train_loss": result.train_loss,
                "test_loss": result.test_loss,
                "test_accuracy": result.test_accuracy,
            },
            step=result.epoch,
        )

    def log_outcome(
        self, dataset: Dataset, result: TrainingResult, register_as: str | None
    ) -> str | None:
        """Figures, final metrics and the model; returns the registered version if any."""
        mlflow.log_image(
            _png_image(confusion_matrix_png(result.confusion, dataset.classes)),
            artifact_file="confusion_matrix.png",
        )
        mlflow.log_image(
            _png_image(training_curve_png(result.history)), artifact_file="training_curve.png"
        )
        mlflow.log_text(json.dumps(dataset.classes), "classes.json")
        # The training split's pixel statistics travel with the model (drift reference).
        reference = dataset.input_stats()
        mlflow.log_dict(reference, "input_stats.json")
        mlflow.log_metric("train_seconds", result.train_seconds)
        mlflow.set_tag(
            "early_stopping.stopped_at_epoch",
            "none" if result.stopped_early_at is None else str(result.stopped_early_at),
        )
        # Two rows: a batch of 1 would make torch.export fix the batch dimension to 1.
        example = dataset.split("test").read(np.arange(2)).astype(np.float32)
        with torch.no_grad():
            logits = result.model(torch.from_numpy(example)).numpy()
        info = mlflow.pytorch.log_model(
            result.model,
            name="model",
            input_example=example,
            signature=infer_signature(example, logits),
            metadata={
                "classes": dataset.classes,
                "input_stats": reference,
                "preprocessing": preprocessing_metadata(dataset),
            },
            registered_model_name=register_as,
            pip_requirements=[f"torch=={torch.__version__.split('+')[0]}", "numpy"],
        )
        version = info.registered_model_version
        return str(version) if version is not None else None


def preprocessing_metadata(dataset: Dataset) -> dict[str, object]:
    """How a client turns an image file into the model's input (MLmodel `preprocessing`):
    decode, convert to `color_mode`, resize (squash) to image_size with `resize`, divide by
    `scale`; the per-channel (x - mean) / std is the model's first layer."""
    info = dataset.info
    return {
        "image_size": info.image_size,
        "channels": info.channels,
        "color_mode": "L" if info.channels == 1 else "RGB",
        "resize": "bilinear",
        "scale": 255.0,
        "mean": [float(v) for v in info.mean],
        "std": [float(v) for v in info.std],
        "normalize_in_model": True,
    }


def _png_image(png: bytes) -> Image.Image:
    return Image.open(BytesIO(png))


@contextmanager
def tracked_run(experiment: str, run_name: str, run_id: str | None = None) -> Iterator[TrackedRun]:
    """Start (or resume, for `mlflow run`) a run; it ends FAILED, or KILLED when cancelled.

    When MLflow stops answering, MlflowUnavailableError (naming the tracking URI) replaces
    MLflow's error, and says whether the run was left RUNNING for `recovery` to end.
    """
    try:
        if run_id:
            run = mlflow.start_run(run_id=run_id)
        else:
            run = mlflow.start_run(experiment_id=experiment_id_for(experiment), run_name=run_name)
    except Exception as exc:
        if is_mlflow_outage(exc):
            raise MlflowUnavailableError(mlflow.get_tracking_uri(), exc, None, False) from exc
        raise
    try:
        yield TrackedRun(run.info.run_id)
    except TrainingCancelled:
        mlflow.end_run("KILLED")
        raise
    except BaseException as exc:
        ended = _end_run_failed()
        if is_mlflow_outage(exc):
            uri = mlflow.get_tracking_uri()
            raise MlflowUnavailableError(uri, exc, run.info.run_id, not ended) from exc
        raise
    mlflow.end_run("FINISHED")


def _end_run_failed() -> bool:
    """End the active run as FAILED; False when MLflow could not be told (it stays RUNNING).

    The run is no longer active in this process either way (MLflow pops it first), so the
    worker's next job can start a run of its own.
    """
    try:
        mlflow.end_run("FAILED")
    except Exception as exc:
        log.warning("could not end the MLflow run as FAILED: %s", exc)
        return False
    return True
