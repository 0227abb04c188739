"""Job store and runner: persistence, idempotency, limits, cancellation, restart recovery.

The runner is exercised with the inline executor and a stand-in pipeline, so these tests
cover the job bookkeeping alone; the API tests run the real pipeline in worker processes.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from jobs_support import (
    FakeOutcome,
    StandInPipeline,
    make_runner,
    run_one_job,
    simulate_crash,
    start_runner,
    submit,
)
from support import wait_until

from training_service.data import DatasetNotFoundError, DatasetStore
from training_service.jobs.records import (
    IdempotencyConflictError,
    Job,
    JobFinishedError,
    JobNotFoundError,
    JobStatus,
    QueueFullError,
)
from training_service.jobs.store import JobStore, SqliteJobStore
from training_service.logs import REQUEST_ID
from training_service.params import TrainingParams


def test_store_persists_jobs_across_connections(
    open_store: Callable[[], JobStore], store: JobStore
) -> None:
    job = Job("job-1", JobStatus.QUEUED, {"epochs": 3}, True, "ds-1", 3)
    store.insert(job)
    store.update("job-1", status="succeeded", metrics={"test_accuracy": 0.99}, epoch=3)
    reopened = open_store()
    loaded = reopened.get("job-1")
    assert loaded.status is JobStatus.SUCCEEDED
    assert loaded.metrics == {"test_accuracy": 0.99}
    assert loaded.epoch == 3 and loaded.register is True
    assert reopened.count_by_status()["succeeded"] == 1
    with pytest.raises(JobNotFoundError):
        reopened.get("job-2")
    with pytest.raises(ValueError, match="unknown job fields"):
        store.update("job-1", nonsense=1)


def test_job_runs_to_success_with_progress_and_version(
    store: JobStore, datasets: DatasetStore
) -> None:
    done, runner = run_one_job(store, datasets)
    # A fresh digits snapshot was made for the job since none was named.
    assert datasets.info(done.dataset_id).source == "digits"
    assert done.status is JobStatus.SUCCEEDED
    assert done.epoch == 2 and done.run_id == "run-1" and done.model_version == "3"
    assert done.metrics == {"test_accuracy": 0.98, "test_loss": 0.2, "train_loss": 0.1}
    assert done.started_at and done.finished_at
    runner.stop()


def test_pipeline_error_marks_the_job_failed_with_the_reason(
    store: JobStore, datasets: DatasetStore
) -> None:
    done, runner = run_one_job(store, datasets, seed=666)
    assert done.status is JobStatus.FAILED
    assert done.error == "RuntimeError: boom"
    runner.stop()


def test_idempotency_key_replays_and_conflicts(store: JobStore, datasets: DatasetStore) -> None:
    runner = make_runner(store, datasets, StandInPipeline())
    first = submit(runner, key="k")
    again = submit(runner, key="k")
    assert again.job_id == first.job_id
    with pytest.raises(IdempotencyConflictError):
        submit(runner, key="k", epochs=3)
    assert submit(runner, key="other").job_id != first.job_id


def test_queue_limit(store: JobStore, datasets: DatasetStore) -> None:
    runner = make_runner(store, datasets, StandInPipeline(), max_queued=2)
    submit(runner)
    submit(runner)
    with pytest.raises(QueueFullError):
        submit(runner)


def test_unknown_dataset_is_refused(store: JobStore, datasets: DatasetStore) -> None:
    runner = make_runner(store, datasets, StandInPipeline())
    with pytest.raises(DatasetNotFoundError):
        runner.submit(
            params=TrainingParams(),
            dataset_id="ds-000000000000",
            register=False,
            request_body={},
        )


def test_cancel_queued_running_and_finished(store: JobStore, datasets: DatasetStore) -> None:
    runner, pipeline = start_runner(store, datasets)
    running = submit(runner)
    queued = submit(runner)
    wait_until(lambda: store.get(running.job_id).status is JobStatus.RUNNING, 30, "start")
    assert runner.cancel(queued.job_id).status is JobStatus.CANCELLED
    runner.cancel(running.job_id)
    stopped = wait_until(
        lambda: (j := store.get(running.job_id)).status.is_final and j, 30, "cancel"
    )
    assert stopped.status is JobStatus.CANCELLED
    assert stopped.error == "cancelled while running"
    with pytest.raises(JobFinishedError):
        runner.cancel(running.job_id)
    with pytest.raises(JobNotFoundError):
        runner.cancel("job-unknown")
    assert len(pipeline.calls) == 1  # the cancelled queued job never ran
    runner.stop()


def test_restart_fails_running_jobs_and_requeues_queued_ones(
    open_store: Callable[[], JobStore], store: JobStore, datasets: DatasetStore
) -> None:
    runner, pipeline = start_runner(store, datasets)
    finished = submit(runner, epochs=1)
    pipeline.gate.set()
    wait_until(lambda: store.get(finished.job_id).status.is_final, 30, "first job")
    pipeline.gate.clear()
    interrupted = submit(runner)
    waiting = submit(runner)
    wait_until(lambda: store.get(interrupted.job_id).status is JobStatus.RUNNING, 30, "start")
    # Simulate a crash: a new process opens the same database; the old one never finishes.
    simulate_crash(runner, store)
    revived_store = open_store()
    revived_pipeline = StandInPipeline()
    revived_pipeline.gate.set()
    revived = make_runner(revived_store, datasets, revived_pipeline)
    failed = revived.start()
    assert [j.job_id for j in failed] == [interrupted.job_id]
    lost = revived_store.get(interrupted.job_id)
    assert lost.status is JobStatus.FAILED
    assert "stopped while this job was running" in (lost.error or "")
    assert revived_store.get(finished.job_id).status is JobStatus.SUCCEEDED
    rerun = wait_until(
        lambda: (j := revived_store.get(waiting.job_id)).status.is_final and j, 30, "requeued"
    )
    assert rerun.status is JobStatus.SUCCEEDED
    revived.stop()
    pipeline.gate.set()  # let the "crashed" runner's thread end
    runner.stop()


def test_restart_requeues_a_running_job_that_has_a_checkpoint(
    tmp_path: Path, open_store: Callable[[], JobStore], store: JobStore, datasets: DatasetStore
) -> None:
    runner, pipeline = start_runner(store, datasets)
    interrupted = submit(runner)
    wait_until(lambda: store.get(interrupted.job_id).status is JobStatus.RUNNING, 30, "start")
    first_start = store.get(interrupted.job_id).started_at
    checkpoints = tmp_path / "checkpoints"
    checkpoints.mkdir()
    (checkpoints / f"{interrupted.job_id}.pt").write_bytes(b"state")
    stale = [checkpoints / "job-ended-long-ago.pt", checkpoints / f".{interrupted.job_id}.pt.9.tmp"]
    for path in stale:
        path.write_bytes(b"left by a crash")
    # A new process opens the same database; the old one never finishes (crashed).
    simulate_crash(runner, store)
    revived_store = open_store()
    revived_pipeline = StandInPipeline()
    revived_pipeline.gate.set()
    revived = make_runner(revived_store, datasets, revived_pipeline, checkpoints_dir=checkpoints)
    assert revived.start() == []  # nothing failed: the job resumes
    assert not any(path.exists() for path in stale)
    resumed = wait_until(
        lambda: (j := revived_store.get(interrupted.job_id)).status.is_final and j, 30, "resume"
    )
    assert resumed.status is JobStatus.SUCCEEDED and resumed.error is None
    assert resumed.started_at == first_start  # the job's first start, kept across the resume
    assert len(revived_pipeline.calls) == 1
    revived.stop()
    pipeline.gate.set()
    runner.stop()


def test_store_migrates_an_old_table_in_place(tmp_path: Path) -> None:
    """A 0.1.0 database (no request_id column) opens with its rows intact, ids null."""
    path = tmp_path / "old.sqlite3"
    db = sqlite3.connect(path)
    db.execute(
        """CREATE TABLE jobs (
            job_id TEXT PRIMARY KEY, status TEXT NOT NULL, params TEXT NOT NULL,
            register INTEGER NOT NULL, dataset_id TEXT NOT NULL, epochs INTEGER NOT NULL,
            epoch INTEGER NOT NULL, metrics TEXT, run_id TEXT, model_name TEXT,
            model_version TEXT, error TEXT, idempotency_key TEXT UNIQUE,
            request_sha256 TEXT, created_at TEXT NOT NULL, started_at TEXT,
            finished_at TEXT, cancel_requested INTEGER NOT NULL DEFAULT 0)"""
    )
    db.execute(
        "INSERT INTO jobs VALUES ('job-old', 'succeeded', '{\"epochs\": 3}', 1, 'ds-1', 3, 3,"
        " '{\"test_accuracy\": 0.98}', 'run-9', 'm', '4', NULL, 'key-1', 'abc',"
        " '2026-11-01T00:00:00+00:00', NULL, NULL, 0)"
    )
    db.commit()
    db.close()

    store = SqliteJobStore(path)
    old = store.get("job-old")
    assert old.request_id is None
    assert (old.status, old.model_version, old.metrics) == (
        JobStatus.SUCCEEDED,
        "4",
        {"test_accuracy": 0.98},
    )
    assert store.by_idempotency_key("key-1") == old
    store.insert(Job("job-new", JobStatus.QUEUED, {}, False, "ds-1", 1, request_id="req-1"))
    assert store.get("job-new").request_id == "req-1"
    assert store.request_id_of("job-new") == "req-1"
    # Opening it again (a worker process does) neither fails nor changes anything.
    again = SqliteJobStore(path)
    assert [j.job_id for j in again.list_jobs()] == ["job-new", "job-old"]
    assert again.get("job-old") == old


def test_runner_records_the_request_id_and_binds_it_while_the_job_runs(
    store: JobStore, datasets: DatasetStore
) -> None:
    seen: list[str | None] = []

    class RecordingPipeline(StandInPipeline):
        def __call__(self, dataset: Any, params: TrainingParams, **kwargs: Any) -> FakeOutcome:
            seen.append(REQUEST_ID.get())
            return super().__call__(dataset, params, **kwargs)

    pipeline = RecordingPipeline()
    pipeline.gate.set()
    runner = make_runner(store, datasets, pipeline)
    runner.start()
    job, _ = runner.submit(
        params=TrainingParams(epochs=1),
        dataset_id=None,
        register=False,
        request_body={"epochs": 1},
        request_id="req-42",
    )
    done = wait_until(lambda: (j := store.get(job.job_id)).status.is_final and j, 30, "job")
    assert done.status is JobStatus.SUCCEEDED and done.request_id == "req-42"
    assert seen == ["req-42"]
    assert pipeline.calls[0]["request_id"] == "req-42"  # the pipeline tags the MLflow run
    assert REQUEST_ID.get() is None  # bound for the job only
    runner.stop()


def test_only_the_lifecycle_writes_job_state() -> None:
    """One writer of job state: no other module calls the store's `insert` or `update`."""
    package = Path(__file__).resolve().parents[1] / "src" / "training_service"
    writers = {
        path.relative_to(package).as_posix()
        for path in package.rglob("*.py")
        if re.search(r"store\.(insert|update)\(", path.read_text())
    }
    assert writers == {"jobs/lifecycle.py"}
