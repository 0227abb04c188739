"""Job runner edge cases: retrying a failed job under its Idempotency-Key, and shutting
down with jobs still queued (none may start once the runner is stopping)."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from jobs_support import (
    StandInPipeline,
    make_runner,
    run_one_job,
    start_runner,
    submit,
    wait_for_end,
)
from support import wait_until

from training_service.data import DatasetStore
from training_service.jobs.records import IdempotencyConflictError, JobStatus
from training_service.jobs.store import JobStore


def test_a_failed_job_is_retried_as_a_new_job_under_its_key(
    store: JobStore, datasets: DatasetStore
) -> None:
    failed, runner = run_one_job(store, datasets, seed=666, key="airflow-run-1")
    assert failed.status is JobStatus.FAILED
    retry = submit(runner, key="airflow-run-1", seed=666)
    assert retry.job_id != failed.job_id and retry.status is JobStatus.QUEUED
    assert wait_for_end(store, retry).status is JobStatus.FAILED
    assert store.get(failed.job_id).status is JobStatus.FAILED  # the old record stays
    # The key now names the retry: replays return it, another body is still a conflict.
    again = submit(runner, key="airflow-run-1", seed=666)
    assert again.job_id not in {failed.job_id, retry.job_id}  # the retry failed too
    with pytest.raises(IdempotencyConflictError):
        submit(runner, key="airflow-run-1", seed=7)
    runner.stop()


def test_a_cancelled_job_is_retried_and_a_succeeded_one_replayed(
    store: JobStore, datasets: DatasetStore
) -> None:
    runner, pipeline = start_runner(store, datasets)
    blocker = submit(runner)
    cancelled = submit(runner, key="k")
    runner.cancel(cancelled.job_id)
    retry = submit(runner, key="k")
    assert retry.job_id != cancelled.job_id and retry.status is JobStatus.QUEUED
    assert submit(runner, key="k").job_id == retry.job_id  # queued: replayed
    pipeline.gate.set()
    assert wait_for_end(store, blocker).status is JobStatus.SUCCEEDED
    assert wait_for_end(store, retry).status is JobStatus.SUCCEEDED
    assert submit(runner, key="k").job_id == retry.job_id  # succeeded: replayed
    runner.stop()


def test_no_queued_job_starts_once_the_runner_is_stopping(
    open_store: Callable[[], JobStore], store: JobStore, datasets: DatasetStore
) -> None:
    runner, pipeline = start_runner(store, datasets)
    running = submit(runner)
    waiting = [submit(runner), submit(runner)]
    wait_until(lambda: store.get(running.job_id).status is JobStatus.RUNNING, 30, "start")
    stopper = threading.Thread(target=runner.stop, kwargs={"timeout": 2})
    stopper.start()
    stopper.join(30)
    assert not stopper.is_alive()
    stopped = store.get(running.job_id)
    assert stopped.status is JobStatus.FAILED and "shut down" in (stopped.error or "")
    assert len(pipeline.calls) == 1, "a queued job started while the runner was stopping"
    assert [store.get(j.job_id).status for j in waiting] == [JobStatus.QUEUED] * 2
    pipeline.gate.set()  # nothing may be left blocked on the gate either

    # A restarted service runs the jobs that were still queued.
    revived_store = open_store()
    revived_pipeline = StandInPipeline()
    revived_pipeline.gate.set()
    revived = make_runner(revived_store, datasets, revived_pipeline)
    assert revived.start() == []
    for job in waiting:
        assert wait_for_end(revived_store, job).status is JobStatus.SUCCEEDED
    revived.stop()
