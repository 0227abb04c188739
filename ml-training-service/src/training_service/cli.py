"""Command line training (the MLproject entry point): the same pipeline as a /v1/train job.

    python -m training_service.cli --epochs 3 --register false
    python -m training_service.cli --source shapes --count 2000 --image-size 32 \
        --architecture resnet18 --epochs 6 --learning-rate 0.002

Under `mlflow run`, MLFLOW_RUN_ID names the run MLflow already created; it is reused.
"""

from __future__ import annotations

import argparse
import json
import os
import uuid
from pathlib import Path

import mlflow
import torch

from training_service.config import Settings
from training_service.data import build_dataset
from training_service.networks import network_names
from training_service.params import OPTIMIZERS, TrainingParams
from training_service.pipeline import run_training_pipeline


def _bool(text: str) -> bool:
    if text.lower() in {"1", "true", "yes"}:
        return True
    if text.lower() in {"0", "false", "no"}:
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got '{text}'")


def _int(text: str) -> int:
    # MLproject parameters have no int type; "3" and "3.0" both arrive as float-typed text.
    value = float(text)
    if not value.is_integer():
        raise argparse.ArgumentTypeError(f"expected a whole number, got '{text}'")
    return int(value)


def _optional_int(text: str) -> int | None:
    """A whole number, or "none" (MLproject parameters cannot be absent): the default."""
    if text.lower() in {"none", "null", ""}:
        return None
    return _int(text)


def _patience(text: str) -> int | None:
    """An epoch count, or none/off/0 for no early stopping."""
    return None if text.lower() in {"off", "0", "0.0"} else _optional_int(text)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    defaults = TrainingParams()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", choices=["digits", "shapes", "folder"], default="digits")
    parser.add_argument("--path", default=None, help="folder under --data-dir (source folder)")
    parser.add_argument("--data-dir", type=Path, default=None, help="default: DATA_DIR")
    parser.add_argument(
        "--image-size", type=_optional_int, default=None, help="default: the data's"
    )
    parser.add_argument("--channels", type=_optional_int, choices=[1, 3, None], default=None)
    parser.add_argument("--count", type=_optional_int, default=None, help="source shapes")
    parser.add_argument("--test-fraction", type=float, default=0.2)
    parser.add_argument("--noise", type=float, default=0.0)
    parser.add_argument("--architecture", choices=network_names(), default=defaults.architecture)
    parser.add_argument("--optimizer", choices=OPTIMIZERS, default=defaults.optimizer)
    parser.add_argument("--epochs", type=_int, default=defaults.epochs)
    parser.add_argument("--batch-size", type=_int, default=defaults.batch_size)
    parser.add_argument("--learning-rate", type=float, default=defaults.learning_rate)
    parser.add_argument("--weight-decay", type=float, default=defaults.weight_decay)
    parser.add_argument("--augmentation", type=_bool, default=defaults.augmentation)
    parser.add_argument(
        "--early-stopping-patience", type=_patience, default=None, help="epochs; none: off"
    )
    parser.add_argument("--seed", type=_int, default=defaults.seed)
    parser.add_argument("--register", type=_bool, default=False)
    parser.add_argument("--model-name", default=None, help="default: MODEL_NAME")
    parser.add_argument("--experiment", default=None, help="default: EXPERIMENT")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    # Training from a shell needs no API token: only the MLflow/data settings apply here.
    settings = Settings(environment="local", api_token=None)
    torch.set_num_threads(settings.torch_threads)
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    data_dir = args.data_dir or settings.data_dir
    dataset = build_dataset(
        args.source,
        data_dir=data_dir,
        path=args.path,
        test_fraction=args.test_fraction,
        seed=args.seed,
        noise=args.noise,
        image_size=args.image_size,
        channels=args.channels,
        count=args.count,
    )  # stored under DATA_DIR/datasets, like a POST /v1/datasets snapshot
    params = TrainingParams(
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        seed=args.seed,
        architecture=args.architecture,
        optimizer=args.optimizer,
        weight_decay=args.weight_decay,
        augmentation=args.augmentation,
        early_stopping_patience=args.early_stopping_patience,
    )
    outcome = run_training_pipeline(
        dataset,
        params,
        experiment=args.experiment or settings.experiment,
        model_name=args.model_name or settings.model_name,
        register=args.register,
        job_id=f"cli-{uuid.uuid4().hex[:12]}",
        on_epoch=lambda e: print(
            f"epoch {e.epoch}/{args.epochs} train_loss={e.train_loss:.4f} "
            f"test_loss={e.test_loss:.4f} test_accuracy={e.test_accuracy:.4f}",
            flush=True,
        ),
        run_id=os.environ.get("MLFLOW_RUN_ID"),
        workers=settings.dataloader_workers,
    )
    final = outcome.result.final
    print(
        json.dumps(
            {
                "run_id": outcome.run_id,
                "model_version": outcome.model_version,
                "dataset_id": dataset.info.dataset_id,
                "dataset_sha256": dataset.info.sha256,
                "test_accuracy": final.test_accuracy,
                "test_loss": final.test_loss,
                "architecture": args.architecture,
                "image_size": dataset.info.image_size,
                "channels": dataset.info.channels,
                "stopped_early_at": outcome.result.stopped_early_at,
                "train_seconds": round(outcome.result.train_seconds, 3),
            }
        )
    )


if __name__ == "__main__":
    main()
