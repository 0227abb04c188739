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
    assert (ROOT / project.env_config_path).is_file()  # python_env.yaml


def test_cli_trains_and_logs_a_run(
    mlflow_uri: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_uri)
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    cli.main(["--epochs", "2.0", "--data-dir", str(tmp_path), "--experiment", "cli-test"])
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["model_version"] is None  # --register defaults to false on the CLI
    run = MlflowClient(mlflow_uri).get_run(summary["run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.tags["dataset_sha256"] == summary["dataset_sha256"]
    assert run.data.tags["service_version"] == PYPROJECT_VERSION
    assert run.data.metrics["test_accuracy"] == pytest.approx(summary["test_accuracy"])
    assert (tmp_path / "datasets" / f"{summary['dataset_id']}.json").is_file()


def test_cli_rejects_fractional_epochs() -> None:
    with pytest.raises(SystemExit):
        cli.parse_args(["--epochs", "2.5"])
