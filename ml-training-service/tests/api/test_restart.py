"""A killed service loses no job: finished jobs stay, running ones are failed with a reason,
and the MLflow run of an interrupted job is ended as FAILED instead of staying RUNNING."""

from __future__ import annotations

from pathlib import Path

from mlflow import MlflowClient
from support import AUTH, ServiceProcess, wait_for_job, wait_until


def test_jobs_survive_a_crash(mlflow_uri: str, tmp_path: Path) -> None:
    env = {"MLFLOW_TRACKING_URI": mlflow_uri}
    first = ServiceProcess(tmp_path / "data", env, tmp_path / "first.log").start()
    try:
        with first.client() as http:
            http.headers.update(AUTH)
            done = http.post("/v1/train", json={"epochs": 1, "register": False}).json()["job_id"]
            finished = wait_for_job(http, done, {"succeeded", "failed"}, 300)
            assert finished["status"] == "succeeded", finished["error"]
            busy = http.post("/v1/train", json={"epochs": 200, "register": False}).json()
            wait_until(
                lambda: http.get(f"/v1/jobs/{busy['job_id']}").json()["progress"]["epoch"] >= 1,
                120,
                "the long job to finish an epoch",
            )
        first.kill()  # SIGKILL: no shutdown hook marks anything
    finally:
        first.stop()

    second = ServiceProcess(tmp_path / "data", env, tmp_path / "second.log")
    second.port, second.env["PORT"] = first.port, str(first.port)  # same address, same data
    second.url = first.url
    second.start()
    try:
        with second.client() as http:
            assert http.get(f"/v1/jobs/{done}").json() == finished
            lost = http.get(f"/v1/jobs/{busy['job_id']}").json()
            assert lost["status"] == "failed"
            assert "stopped while this job was running" in lost["error"]
            assert lost["finished_at"] is not None
            client = MlflowClient(mlflow_uri)
            assert lost["run_id"], "the run id is recorded when the run starts"
            wait_until(
                lambda: client.get_run(lost["run_id"]).info.status == "FAILED",
                120,
                "the interrupted job's MLflow run to be ended as FAILED",
            )
            run = client.get_run(lost["run_id"])
            assert "stopped while this run was in progress" in run.data.tags["failure"]
            assert run.info.end_time is not None
            completed = client.get_run(finished["run_id"])
            assert completed.info.status == "FINISHED"  # runs that ended are left alone
            assert {j["job_id"] for j in http.get("/v1/jobs").json()["jobs"]} == {
                done,
                busy["job_id"],
            }
    finally:
        second.stop()
