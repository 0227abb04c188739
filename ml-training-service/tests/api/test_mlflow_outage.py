"""MLflow going away mid-job: the job fails within 60 s with an error naming MLflow and the
tracking URI (not minutes later), and its run, which MLflow could not be told about, is
ended as FAILED once MLflow is back. Uses a private MLflow server: others keep theirs."""

from __future__ import annotations

import time
from pathlib import Path

from mlflow import MlflowClient
from support import (
    AUTH,
    ServiceProcess,
    free_port,
    start_mlflow_server,
    stop_process_group,
    wait_for_job,
    wait_until,
)


def test_a_job_fails_fast_when_mlflow_goes_away_and_its_run_is_ended_later(
    tmp_path: Path,
) -> None:
    port = free_port()
    mlflow_root = tmp_path / "mlflow"
    uri = f"http://127.0.0.1:{port}"
    mlflow_server = start_mlflow_server(mlflow_root, port)
    env = {"MLFLOW_TRACKING_URI": uri, "MLFLOW_RUN_CLOSE_RETRY_SECONDS": "2"}
    service = ServiceProcess(tmp_path / "data", env, tmp_path / "service.log")
    try:
        service.start()
        with service.client() as http:
            http.headers.update(AUTH)
            job_id = http.post("/v1/train", json={"epochs": 200, "register": False}).json()[
                "job_id"
            ]
            wait_until(
                lambda: http.get(f"/v1/jobs/{job_id}").json()["progress"]["epoch"] >= 1,
                300,
                "the job to log an epoch to MLflow",
            )
            stop_process_group(mlflow_server)
            gone = time.monotonic()
            failed = wait_for_job(http, job_id, {"failed", "succeeded", "cancelled"}, 90)
            took = time.monotonic() - gone
            assert failed["status"] == "failed"
            assert took < 60, f"the job took {took:.0f} s to fail after MLflow went away"
            assert "MLflow" in failed["error"] and uri in failed["error"], failed["error"]
            run_id = failed["run_id"]
            assert run_id

            mlflow_server = start_mlflow_server(mlflow_root, port)  # same port, same backend
            client = MlflowClient(uri)
            wait_until(
                lambda: client.get_run(run_id).info.status != "RUNNING",
                60,
                "the failed job's MLflow run to be ended once MLflow is back",
            )
            run = client.get_run(run_id)
            assert run.info.status == "FAILED"
            assert "MLflow did not answer" in run.data.tags["failure"]
    finally:
        service.stop()
        stop_process_group(mlflow_server)
