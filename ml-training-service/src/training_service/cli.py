"""Command line training (the MLproject entry point): the same pipeline as a /v1/train job.

    python -m training_service.cli --epochs 3 --register false

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
from training_service.data import DatasetStore, build_dataset
from training_service.pipeline import run_training_pipeline
from training_service.train import TrainingParams


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


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    defaults = TrainingParams()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", choices=["digits", "folder"], default="digits")
    parser.add_argument("--path", default=None, help="folder under --data-dir (source folder)")
    parser.add_argument("--data-dir", type=Path, default=None, help="default: DATA_DIR")
    parser.add_argument("--test-fraction", type=float, default=0.2)
    parser.add_argument("--noise", type=float, default=0.0)
    parser.add_argument("--epochs", type=_int, default=defaults.epochs)
    parser.add_argument("--batch-size", type=_int, default=defaults.batch_size)
    parser.add_argument("--learning-rate", type=float, default=defaults.learning_rate)
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
    )
    DatasetStore(data_dir / "datasets").save(dataset)
    outcome = run_training_pipeline(
        dataset,
        TrainingParams(args.epochs, args.batch_size, args.learning_rate, args.seed),
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
                "train_seconds": round(outcome.result.train_seconds, 3),
            }
        )
    )


if __name__ == "__main__":
    main()
