"""Two real service replicas (uvicorn processes) on one Postgres job store, sharing DATA_DIR
(datasets, checkpoints) as replicas behind a load balancer do.

- 20 concurrent submissions spread over both replicas, 5 Idempotency-Keys x 4: each key gets
  one job, and every job runs exactly once (one MLflow run, one "started" line in all logs);
- kill -9 of the replica running a job: the other replica resumes it from its checkpoint
  within the lease timeout, in the same MLflow run (each epoch logged once); never left
  `running`.
"""

from __future__ import annotations

import re
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from mlflow import MlflowClient
from support import AUTH, ServiceProcess, wait_for_job, wait_until

LEASE_SECONDS = 3
KEYS, REPEATS = 4, 5  # 20 submissions, 4 jobs: two each per replica
TINY = {"epochs": 1, "register": False, "batch_size": 128}
LONG_EPOCHS = 8  # about a second each on digits: long enough to be killed mid-job


@dataclass
class Replicas:
    pair: list[ServiceProcess]
    data_dir: Path
    experiment: str
    dataset_id: str

    def started_lines(self) -> Counter[str]:
        """How many times each job was started, over both replicas' logs."""
        counts: Counter[str] = Counter()
        for replica in self.pair:
            text = replica.log_path.read_text(errors="replace")
            counts.update(re.findall(r"job (job-[0-9a-f]+): started", text))
        return counts


@pytest.fixture(scope="module")
def replicas(
    mlflow_uri: str, postgres_cluster: object, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Replicas]:
    database_url = postgres_cluster.create_database()  # type: ignore[attr-defined]
    root = tmp_path_factory.mktemp("replicas")
    experiment = f"replicas-{uuid.uuid4().hex[:8]}"
    env = {
        "MLFLOW_TRACKING_URI": mlflow_uri,
        "DATABASE_URL": database_url,
        "JOB_LEASE_SECONDS": str(LEASE_SECONDS),
        "JOB_POLL_SECONDS": "0.2",
        "MAX_QUEUED_JOBS": "50",
        "EXPERIMENT": experiment,
    }
    pair = [ServiceProcess(root / "data", env, root / f"replica-{i}.log") for i in (1, 2)]
    try:
        for replica in pair:
            replica.start()
        response = httpx.post(
            f"{pair[0].url}/v1/datasets", json={"source": "digits"}, headers=AUTH, timeout=120
        )
        assert response.status_code == 201, response.text
        yield Replicas(pair, root / "data", experiment, response.json()["dataset_id"])
    finally:
        for replica in pair:
            replica.stop()


def test_concurrent_submissions_share_keys_and_run_each_job_once(
    replicas: Replicas, mlflow_uri: str
) -> None:
    def post(index: int) -> tuple[str, str]:
        key = f"dag-run-{index % KEYS}"
        replica = replicas.pair[index % 2]
        body = {**TINY, "dataset_id": replicas.dataset_id, "seed": index % KEYS}
        response = httpx.post(
            f"{replica.url}/v1/train",
            json=body,
            headers={**AUTH, "Idempotency-Key": key},
            timeout=120,
        )
        assert response.status_code == 202, response.text
        return key, response.json()["job_id"]

    with ThreadPoolExecutor(KEYS * REPEATS) as pool:
        answers = list(pool.map(post, range(KEYS * REPEATS)))
    jobs_of_key: dict[str, set[str]] = {}
    for key, job_id in answers:
        jobs_of_key.setdefault(key, set()).add(job_id)
    assert all(len(ids) == 1 for ids in jobs_of_key.values()), jobs_of_key
    job_ids = {job_id for ids in jobs_of_key.values() for job_id in ids}
    assert len(job_ids) == KEYS

    with replicas.pair[1].client() as http:
        listed = http.get("/v1/jobs", params={"limit": 100}).json()["jobs"]
        assert {job["job_id"] for job in listed} == job_ids  # no stray job was queued
        for job_id in job_ids:
            done = wait_for_job(http, job_id, {"succeeded", "failed", "cancelled"}, 300)
            assert done["status"] == "succeeded", done["error"]
    tracking = MlflowClient(mlflow_uri)
    experiment = tracking.get_experiment_by_name(replicas.experiment)
    assert experiment is not None
    runs = tracking.search_runs([experiment.experiment_id], max_results=100)
    assert sorted(run.data.tags["job_id"] for run in runs) == sorted(job_ids)
    assert replicas.started_lines() == dict.fromkeys(job_ids, 1)
    # Both replicas trained: the work is shared, not pinned to the replica that took it.
    assert all("started" in r.log_path.read_text() for r in replicas.pair)


def test_a_killed_replicas_job_is_resumed_by_the_other(replicas: Replicas, mlflow_uri: str) -> None:
    entry = replicas.pair[0]
    with entry.client() as http:
        http.headers.update(AUTH)
        body = {**TINY, "epochs": LONG_EPOCHS, "dataset_id": replicas.dataset_id, "seed": 99}
        job_id = http.post("/v1/train", json=body).json()["job_id"]
        wait_until(
            lambda: http.get(f"/v1/jobs/{job_id}").json()["progress"]["epoch"] >= 2,
            300,
            "the long job to checkpoint two epochs",
        )
        running = http.get(f"/v1/jobs/{job_id}").json()
    assert running["status"] == "running"
    owner = next(r for r in replicas.pair if f"job {job_id}: started" in r.log_path.read_text())
    survivor = next(r for r in replicas.pair if r is not owner)
    owner.kill()  # SIGKILL to the replica and its training worker: no shutdown code runs
    assert running["progress"]["epoch"] < LONG_EPOCHS, "finished before the kill; raise epochs"

    with survivor.client() as http:
        # Within the lease (plus one renewal period) the job is taken over, then it finishes.
        resumed = wait_for_job(http, job_id, {"succeeded", "failed", "cancelled"}, 180)
    assert resumed["status"] == "succeeded", resumed["error"]
    assert resumed["progress"] == {"epoch": LONG_EPOCHS, "epochs": LONG_EPOCHS}
    assert "resuming after epoch" in survivor.log_path.read_text()
    assert resumed["run_id"] == running["run_id"]  # the same MLflow run, continued
    tracking = MlflowClient(mlflow_uri)
    assert tracking.get_run(resumed["run_id"]).info.status == "FINISHED"
    steps = [m.step for m in tracking.get_metric_history(resumed["run_id"], "test_accuracy")]
    assert sorted(steps) == list(range(1, LONG_EPOCHS + 1)), steps  # each epoch ran once
