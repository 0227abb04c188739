"""The command line and the MLflow Project that wraps it run the same training pipeline."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
from mlflow import MlflowClient
from mlflow.projects import _project_spec
from support import PYPROJECT_VERSION, ROOT

from training_service import cli


def test_mlproject_main_entry_point_runs_the_cli() -> None:
    project = _project_spec.load_project(str(ROOT))
    entry = project.get_entry_point("main")
    command = shlex.split(entry.compute_command({"epochs": "3", "register": "true"}, None))
    assert command[:4] == ["PYTHONPATH=src", "python", "-m", "training_service.cli"]
    args = cli.parse_args(command[4:])
    assert (args.epochs, args.register, args.batch_size, args.seed) == (3, True, 64, 42)
    assert (args.source, args.architecture, args.optimizer) == ("digits", "small_cnn", "adamw")
    assert (args.image_size, args.channels, args.count) == (None, None, None)
    assert (args.augmentation, args.early_stopping_patience) == (False, None)
    chosen = {"source": "shapes", "dataset_image_size": "32", "dataset_channels": "3",
              "dataset_count": "2000",
              "architecture": "resnet18", "optimizer": "sgd", "augmentation": "true",
              "early_stopping_patience": "3", "weight_decay": "0.0005"}  # fmt: skip
    args = cli.parse_args(shlex.split(entry.compute_command(chosen, None))[4:])
    assert (args.source, args.image_size, args.channels, args.count) == ("shapes", 32, 3, 2000)
    assert (args.architecture, args.optimizer, args.weight_decay) == ("resnet18", "sgd", 0.0005)
    assert (args.augmentation, args.early_stopping_patience) == (True, 3)
    assert (ROOT / project.env_config_path).is_file()  # python_env.yaml


def test_cli_trains_and_logs_a_run(
    mlflow_uri: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_uri)
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    cli.main([
        "--epochs", "2.0", "--data-dir", str(tmp_path), "--experiment", "cli-test",
        "--source", "shapes", "--count", "60", "--image-size", "12", "--channels", "1",
        "--optimizer", "adam", "--augmentation", "true", "--learning-rate", "0.003",
    ])  # fmt: skip
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (summary["image_size"], summary["channels"]) == (12, 1)
    assert summary["model_version"] is None  # --register defaults to false on the CLI
    run = MlflowClient(mlflow_uri).get_run(summary["run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.tags["dataset_sha256"] == summary["dataset_sha256"]
    assert run.data.tags["service_version"] == PYPROJECT_VERSION
    assert run.data.metrics["test_accuracy"] == pytest.approx(summary["test_accuracy"])
    assert (run.data.params["optimizer"], run.data.params["augmentation"]) == ("adam", "true")
    assert run.data.params["image_size"] == "12" and run.data.params["channels"] == "1"
    assert (tmp_path / "datasets" / summary["dataset_id"] / "info.json").is_file()


@pytest.mark.parametrize(
    "argv",
    [["--epochs", "2.5"], ["--architecture", "vgg16"], ["--optimizer", "rmsprop"],
     ["--channels", "2"], ["--source", "mnist"]],
)  # fmt: skip
def test_cli_rejects_bad_options(argv: list[str]) -> None:
    with pytest.raises(SystemExit):
        cli.parse_args(argv)
