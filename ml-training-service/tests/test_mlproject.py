"""The MLflow Project for real: `mlflow run . -e main --env-manager local` against the test
MLflow server, and its two environment files (python_env.yaml, conda.yaml) kept equal."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import httpx
import yaml
from support import PYPROJECT_VERSION, ROOT, VENV_BIN

EXPERIMENT = "mlproject-run"


def test_conda_yaml_is_the_python_env_in_conda_format() -> None:
    python_env = yaml.safe_load((ROOT / "python_env.yaml").read_text())
    conda = yaml.safe_load((ROOT / "conda.yaml").read_text())
    conda_python = next(d for d in conda["dependencies"] if isinstance(d, str) and "python=" in d)
    conda_pip = next(d["pip"] for d in conda["dependencies"] if isinstance(d, dict))
    assert conda_python == f"python={python_env['python']}"
    assert "pip" in conda["dependencies"]
    assert conda_pip == python_env["dependencies"]


def test_mlflow_run_trains_and_the_run_is_finished(mlflow_uri: str, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": mlflow_uri,
        # --env-manager local runs the entry point's `python` from PATH: this venv's.
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "DATA_DIR": str(tmp_path),
    }
    for inherited in ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME"):
        env.pop(inherited, None)
    command = [
        str(VENV_BIN / "mlflow"), "run", str(ROOT), "-e", "main", "--env-manager", "local",
        "--experiment-name", EXPERIMENT, "-P", "epochs=1", "-P", "seed=7",
    ]  # fmt: skip
    done = subprocess.run(
        command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, f"mlflow run failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"

    # Found the way any MLflow client finds it: the REST API, by experiment name.
    with httpx.Client(base_url=f"{mlflow_uri}/api/2.0/mlflow", timeout=30) as api:
        experiment = api.get("/experiments/get-by-name", params={"experiment_name": EXPERIMENT})
        assert experiment.status_code == 200, experiment.text
        experiment_id = experiment.json()["experiment"]["experiment_id"]
        found = api.post("/runs/search", json={"experiment_ids": [experiment_id]})
        assert found.status_code == 200, found.text
    runs = found.json()["runs"]
    assert len(runs) == 1, runs
    run = runs[0]
    assert run["info"]["status"] == "FINISHED"
    assert run["info"]["run_id"] in done.stdout + done.stderr  # the run mlflow run created
    metrics = {m["key"]: m["value"] for m in run["data"]["metrics"]}
    params = {p["key"]: p["value"] for p in run["data"]["params"]}
    tags = {t["key"]: t["value"] for t in run["data"]["tags"]}
    assert {"train_loss", "test_loss", "test_accuracy"} <= set(metrics)
    assert metrics["test_accuracy"] > 0.5  # one epoch on digits is far above chance (0.1)
    assert params["epochs"] == "1" and params["seed"] == "7"
    assert tags["mlflow.project.entryPoint"] == "main"
    assert tags["service_version"] == PYPROJECT_VERSION
