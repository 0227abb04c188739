"""A killed service loses no job: finished jobs stay, a running job resumes from its last
checkpoint in the same MLflow run (each epoch logged once), and a running job without a
checkpoint is failed with a reason, its MLflow run ended as FAILED instead of left RUNNING."""

from __future__ import annotations

from pathlib import Path

import httpx
from mlflow import MlflowClient
from support import AUTH, ServiceProcess, wait_for_job, wait_until

EPOCHS = 25  # about a second each on digits: long enough to be killed mid-job


def epoch_of(http: httpx.Client, job_id: str) -> int:
    epoch: int = http.get(f"/v1/jobs/{job_id}").json()["progress"]["epoch"]
    return epoch


def test_jobs_survive_a_crash_and_resume_from_their_checkpoint(
    mlflow_uri: str, tmp_path: Path
) -> None:
    env = {"MLFLOW_TRACKING_URI": mlflow_uri, "MAX_CONCURRENT_JOBS": "2"}
    data = tmp_path / "data"
    first = ServiceProcess(data, env, tmp_path / "first.log").start()
    try:
        with first.client() as http:
            http.headers.update(AUTH)
            done = http.post("/v1/train", json={"epochs": 1, "register": False}).json()["job_id"]
            finished = wait_for_job(http, done, {"succeeded", "failed"}, 300)
            assert finished["status"] == "succeeded", finished["error"]
            long_job = {"epochs": EPOCHS, "register": True, "seed": 11}
            resumed_id = http.post("/v1/train", json=long_job).json()["job_id"]
            lost_id = http.post("/v1/train", json={**long_job, "register": False}).json()["job_id"]
            wait_until(
                lambda: min(epoch_of(http, resumed_id), epoch_of(http, lost_id)) >= 2,
                300,
                "both long jobs to checkpoint an epoch",
            )
            before_kill = epoch_of(http, resumed_id)
        first.kill()  # SIGKILL to the service and its workers: no shutdown code runs
    finally:
        first.stop()
    checkpoints = data / "checkpoints"
    assert (checkpoints / f"{resumed_id}.pt").is_file()
    (checkpoints / f"{lost_id}.pt").unlink()  # as if killed before its first checkpoint
    assert before_kill < EPOCHS, "the job finished before the kill; raise EPOCHS"

    second = ServiceProcess(data, env, tmp_path / "second.log")
    second.port, second.env["PORT"] = first.port, str(first.port)  # same address, same data
    second.url = first.url
    second.start()
    try:
        with second.client() as http:
            assert http.get(f"/v1/jobs/{done}").json() == finished
            tracking = MlflowClient(mlflow_uri)

            resumed = wait_for_job(http, resumed_id, {"succeeded", "failed"}, 600)
            assert resumed["status"] == "succeeded", resumed["error"]
            assert resumed["progress"] == {"epoch": EPOCHS, "epochs": EPOCHS}
            assert resumed["model_version"] and resumed["model_name"] == "image-classifier"
            run = tracking.get_run(resumed["run_id"])
            assert run.info.status == "FINISHED"
            for metric in ("train_loss", "test_loss", "test_accuracy"):
                steps = [m.step for m in tracking.get_metric_history(run.info.run_id, metric)]
                assert sorted(steps) == list(range(1, EPOCHS + 1)), (metric, steps)
            assert not (checkpoints / f"{resumed_id}.pt").exists()  # gone with the job
            assert "resuming after epoch" in (tmp_path / "second.log").read_text()

            lost = http.get(f"/v1/jobs/{lost_id}").json()
            assert lost["status"] == "failed"
            assert "stopped while this job was running" in lost["error"]
            assert lost["finished_at"] is not None
            wait_until(
                lambda: tracking.get_run(lost["run_id"]).info.status == "FAILED",
                120,
                "the interrupted job's MLflow run to be ended as FAILED",
            )
            lost_run = tracking.get_run(lost["run_id"])
            assert "stopped while this run was in progress" in lost_run.data.tags["failure"]
            assert tracking.get_run(finished["run_id"]).info.status == "FINISHED"
    finally:
        second.stop()
