"""The model ml-training-service registers, for the benchmark to serve.

The subtrees never import each other, so the training service is run as its own command
line, `python -m training_service.cli --register true`, from its own subtree and venv,
against the benchmark's MLflow server. It trains its digits CNN, registers a version (alias
`staging`) and saves its dataset snapshot; the benchmark takes the held-out split of that
snapshot as the inputs every server must agree on, and points `production` at the version,
as a promotion would.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from digits_model import HELD_OUT, MODEL, RegisteredModel


def register_with_training_service(
    training_dir: Path, python: Path, tracking_uri: str, work: Path
) -> RegisteredModel:
    """Train and register with the training service's CLI; fail with its output if it fails."""
    training_dir = training_dir.resolve()
    if not (training_dir / "src" / "training_service" / "cli.py").is_file():
        sys.exit(f"--training-service {training_dir}: no src/training_service/cli.py there")
    if not python.is_file():
        sys.exit(f"--training-python {python}: no such interpreter (make -C {training_dir} setup)")
    data_dir = work / "training-data"
    command = [str(python), "-m", "training_service.cli", "--register", "true",
               "--model-name", MODEL, "--experiment", "serving-benchmark"]  # fmt: skip
    env = {
        **os.environ,
        "PYTHONPATH": str(training_dir / "src"),
        "MLFLOW_TRACKING_URI": tracking_uri,
        "DATA_DIR": str(data_dir),
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    }
    done = subprocess.run(
        command, cwd=training_dir, env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    if summary.get("model_version") is None:
        sys.exit(f"the training service registered no version:\n{done.stdout}")
    version = str(summary["model_version"])

    snapshot = data_dir / "datasets" / summary["dataset_id"]
    info = json.loads(snapshot.with_suffix(".json").read_text())
    with np.load(snapshot.with_suffix(".npz")) as arrays:
        x_test = arrays["x_test"][:HELD_OUT].astype(np.float32)
        y_test = arrays["y_test"][:HELD_OUT]
    classes = [str(c) for c in info["classes"]]

    import mlflow

    client = mlflow.tracking.MlflowClient(tracking_uri, tracking_uri)
    client.set_registered_model_alias(MODEL, "production", version)
    return RegisteredModel(
        version=version,
        x_held_out=x_test,
        y_held_out=[classes[int(i)] for i in y_test],
        classes=classes,
        provenance=(
            f"the digits CNN of ml-training-service, trained and registered by its own "
            f"command line (`python -m training_service.cli --register true`, from "
            f"{training_dir.name}/ with {python}): run {summary['run_id']}, dataset "
            f"{summary['dataset_id']}, test accuracy {summary['test_accuracy']:.4f}, "
            f"trained in {summary['train_seconds']:.1f} s"
        ),
    )
