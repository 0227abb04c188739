"""The Postgres job store against a real server: migrations (empty -> head at start, a second
start changes nothing, replicas starting at once do not race), claims (each queued job to
exactly one replica), leases (a dead replica's job is interrupted once) and the
Idempotency-Key race between replicas. The DATABASE_URL password never reaches an error."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg
import pytest
from jobs_support import StandInPipeline, make_runner
from postgres_support import PostgresCluster
from support import ROOT, free_port

from training_service.config import Settings
from training_service.data import DatasetStore
from training_service.jobs import lifecycle
from training_service.jobs.pg_migrations import HEAD, connect, libpq_url, migrate
from training_service.jobs.postgres_store import PostgresJobStore
from training_service.jobs.records import COLUMNS, Job, JobStatus


@pytest.fixture()
def replica_stores(postgres_url: str) -> Iterator[Callable[..., PostgresJobStore]]:
    """Opens stores on one database, each as a separate replica would (its own owner)."""
    opened: list[PostgresJobStore] = []

    def open_store(lease_seconds: float = 30.0) -> PostgresJobStore:
        opened.append(PostgresJobStore(postgres_url, lease_seconds=lease_seconds))
        return opened[-1]

    yield open_store
    for store in opened:
        store.close()


def applied_versions(url: str) -> list[int]:
    with psycopg.connect(libpq_url(url)) as conn:
        rows = conn.execute("SELECT version FROM training_schema_migrations ORDER BY 1")
        return [row[0] for row in rows]


def test_an_empty_database_is_migrated_at_start_and_a_second_start_is_a_no_op(
    postgres_url: str, replica_stores: Callable[..., PostgresJobStore]
) -> None:
    store = replica_stores()
    assert applied_versions(postgres_url) == list(range(1, HEAD + 1))
    with psycopg.connect(libpq_url(postgres_url)) as conn:
        columns = {
            row[0]
            for row in conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = 'jobs'"
            )
        }
    # Every Job field has its column: a new field without a migration fails here.
    assert set(COLUMNS) | {"seq", "owner", "lease_expires_at"} == columns
    store.insert(Job("job-1", JobStatus.QUEUED, {"epochs": 1}, True, "ds-1", 1))
    again = replica_stores()  # a second start (a restart, or another replica)
    assert applied_versions(postgres_url) == list(range(1, HEAD + 1))
    assert again.get("job-1").params == {"epochs": 1}
    with connect(postgres_url) as conn:
        assert migrate(conn) == []


def test_replicas_starting_at_once_do_not_race(postgres_url: str) -> None:
    starters = 6
    barrier = threading.Barrier(starters)

    def start() -> list[int]:
        with connect(postgres_url) as conn:
            barrier.wait()
            return migrate(conn)

    with ThreadPoolExecutor(starters) as pool:
        applied = list(pool.map(lambda _: start(), range(starters)))
    assert sorted(v for versions in applied for v in versions) == list(range(1, HEAD + 1))
    assert applied_versions(postgres_url) == list(range(1, HEAD + 1))


def test_a_database_newer_than_the_service_is_refused(postgres_url: str) -> None:
    with connect(postgres_url) as conn:
        migrate(conn)
        conn.execute("INSERT INTO training_schema_migrations (version, name) VALUES (999, 'x')")
    with pytest.raises(RuntimeError, match="schema version 999, newer than this service"):
        PostgresJobStore(postgres_url)


def test_each_queued_job_is_claimed_by_exactly_one_replica(
    replica_stores: Callable[..., PostgresJobStore],
) -> None:
    replicas = [replica_stores(), replica_stores()]
    jobs = 40
    for n in range(jobs):
        replicas[0].insert(Job(f"job-{n:03d}", JobStatus.QUEUED, {}, False, "ds-1", 1))
    claimed: list[tuple[str, str]] = []

    def claim_all(store: PostgresJobStore) -> None:
        while (job := lifecycle.claim_next(store)) is not None:
            claimed.append((job.job_id, store.owner))

    # Two dispatcher threads per replica, each replica with its own connection.
    threads = [threading.Thread(target=claim_all, args=(s,)) for s in replicas * 2]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(job_id for job_id, _ in claimed) == [f"job-{n:03d}" for n in range(jobs)]
    for job_id, owner in claimed:
        mine = next(s for s in replicas if s.owner == owner)
        assert mine.owns(job_id) and not next(s for s in replicas if s is not mine).owns(job_id)
    assert replicas[1].get("job-000").status is JobStatus.RUNNING


def test_a_job_whose_lease_ran_out_is_taken_over_once(
    replica_stores: Callable[..., PostgresJobStore],
) -> None:
    dead, alive, third = replica_stores(1.0), replica_stores(1.0), replica_stores(1.0)
    dead.insert(Job("job-1", JobStatus.QUEUED, {}, False, "ds-1", 3))
    assert (claimed := dead.claim_next()) is not None and claimed.job_id == "job-1"
    lifecycle.record_epoch(dead, "job-1", 1, {"test_accuracy": 0.5})
    with alive.lock:
        assert alive.interrupted_jobs(at_start=False) == []  # the lease still holds
    threading.Event().wait(0.6)
    dead.renew_leases()  # a live owner keeps it
    threading.Event().wait(0.6)
    assert not dead.is_cancel_requested("job-1")
    with alive.lock:
        assert alive.interrupted_jobs(at_start=False) == []
    threading.Event().wait(1.2)  # the owner stopped renewing: it died
    # Two replicas look at once: one takes the job over (here: resumes it), the other skips it.
    with alive.lock:
        resumed, failed = lifecycle.recover_interrupted(alive, lambda job: True, at_start=False)
        with third.lock:
            assert third.interrupted_jobs(at_start=False) == []  # locked by `alive`, skipped
    assert [job.job_id for job in resumed] == ["job-1"] and failed == []
    assert alive.get("job-1").status is JobStatus.QUEUED
    assert dead.is_cancel_requested("job-1")  # the old owner, were it alive, stops
    retaken = third.claim_next()
    assert retaken is not None and retaken.epoch == 1 and third.owns("job-1")
    assert not dead.owns("job-1")
    lifecycle.finish(dead, "job-1", lifecycle.JobOutcome(JobStatus.FAILED, error="late"))
    assert third.get("job-1").status is JobStatus.RUNNING  # the old owner cannot end it


def test_one_job_per_idempotency_key_across_replicas(
    replica_stores: Callable[..., PostgresJobStore], tmp_path: Path
) -> None:
    datasets = DatasetStore(tmp_path / "datasets")
    runners = [make_runner(replica_stores(), datasets, StandInPipeline()) for _ in range(2)]
    dataset_id = datasets.save(_tiny_dataset(datasets)).dataset_id
    barrier = threading.Barrier(8)

    def post(index: int) -> str:
        barrier.wait()
        runner = runners[index % 2]
        job, _ = runner.submit(
            params=lifecycle_params(),
            dataset_id=dataset_id,
            register=False,
            request_body={"epochs": 1},
            idempotency_key="the-key",
        )
        return job.job_id

    with ThreadPoolExecutor(8) as pool:
        ids = set(pool.map(post, range(8)))
    assert len(ids) == 1
    assert runners[0].store.count_by_status()["queued"] == 1


def lifecycle_params() -> Any:
    from training_service.params import TrainingParams

    return TrainingParams(epochs=1)


def _tiny_dataset(datasets: DatasetStore) -> Any:
    from training_service.data import build_dataset

    return build_dataset("digits", data_dir=datasets.root, seed=0)


def test_the_database_password_never_reaches_an_error(
    postgres_cluster: PostgresCluster, tmp_path: Path
) -> None:
    wrong = postgres_cluster.url(password="s3cret-wrong-password")
    with pytest.raises(RuntimeError) as refused:
        PostgresJobStore(wrong)
    message = str(refused.value)
    assert "s3cret-wrong-password" not in message
    assert f"127.0.0.1:{postgres_cluster.port}/postgres (DATABASE_URL)" in message
    assert "password authentication failed" in message
    with pytest.raises(ValueError) as invalid:
        Settings(environment="local", database_url="mysql://u:s3cret-pw@db/training")
    assert "s3cret-pw" not in str(invalid.value) and "Postgres URL" in str(invalid.value)
    # The service itself refuses to start, saying why, and never prints the password.
    for url, reason in (
        ("mysql://u:s3cret-pw@db/training", "DATABASE_URL must be a Postgres URL"),
        (wrong, "password authentication failed"),
    ):
        started = subprocess.run(
            [sys.executable, "-m", "training_service"],
            env={**os.environ, "PYTHONPATH": str(ROOT / "src"), "ENVIRONMENT": "local",
                 "DATA_DIR": str(tmp_path), "DATABASE_URL": url, "PORT": str(free_port()),
                 "JOB_EXECUTOR": "thread"},
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        output = started.stdout + started.stderr
        assert started.returncode != 0 and reason in output, output
        assert "s3cret" not in output


def test_database_url_can_come_from_a_file(tmp_path: Path) -> None:
    secret = tmp_path / "database-url"
    secret.write_text("postgresql+psycopg://training:pw@postgres:5432/training\n")
    settings = Settings(environment="local", database_url_file=secret)
    assert settings.job_database_url == "postgresql+psycopg://training:pw@postgres:5432/training"
    assert "pw@" not in repr(settings)
    # Empty (compose's default) keeps the SQLite store.
    assert Settings(environment="local", database_url="").job_database_url is None


def test_a_starting_replica_keeps_the_checkpoint_files_of_jobs_running_elsewhere(
    replica_stores: Callable[..., PostgresJobStore], tmp_path: Path
) -> None:
    busy, starting = replica_stores(), replica_stores()
    busy.insert(Job("job-busy", JobStatus.QUEUED, {}, False, "ds-1", 3))
    assert busy.claim_next() is not None  # another replica trains it, writing checkpoints
    checkpoints = tmp_path / "checkpoints"
    checkpoints.mkdir()
    kept = [checkpoints / "job-busy.pt", checkpoints / ".job-busy.pt.77.tmp"]
    gone = [checkpoints / "job-gone.pt", checkpoints / ".job-gone.pt.78.tmp"]
    for path in kept + gone:
        path.write_bytes(b"state")
    runner = make_runner(
        starting,
        DatasetStore(tmp_path / "datasets"),
        StandInPipeline(),
        checkpoints_dir=checkpoints,
    )
    assert runner.start() == []
    runner.stop()
    assert [p.exists() for p in kept + gone] == [True, True, False, False]
