"""Job runner test helpers: a stand-in pipeline the test controls, runner and submit shortcuts.

The runner is exercised with the inline executor and this stand-in, so the job tests cover
the bookkeeping alone; the API tests run the real pipeline in worker processes.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from support import wait_until

from training_service.data import DatasetStore
from training_service.jobs.executors import InlineJobExecutor
from training_service.jobs.records import Job, TrainingDefaults
from training_service.jobs.runner import JobRunner
from training_service.jobs.store import JobStore
from training_service.params import EpochResult, TrainingCancelled, TrainingParams


class FakeOutcome:
    def __init__(self, epochs: int) -> None:
        self.run_id = "run-1"
        self.model_version = "3"
        final = EpochResult(epochs, 0.1, 0.2, 0.98)
        self.result = type("R", (), {"final": final, "stopped_early_at": None})()


class StandInPipeline:
    """Reports epochs like the real pipeline; blocks on `gate` so tests control timing."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.calls: list[dict[str, Any]] = []

    def __call__(self, dataset: Any, params: TrainingParams, **kwargs: Any) -> FakeOutcome:
        self.calls.append({"params": params, **kwargs})
        kwargs["on_run_started"]("run-1")
        for epoch in range(1, params.epochs + 1):
            while not self.gate.wait(0.01):
                if kwargs["should_stop"]():
                    raise TrainingCancelled
            kwargs["on_epoch"](EpochResult(epoch, 0.5, 0.4, 0.9))
        if params.seed == 666:
            raise RuntimeError("boom")
        return FakeOutcome(params.epochs)


def make_runner(
    store: JobStore,
    datasets: DatasetStore,
    pipeline: StandInPipeline,
    max_queued: int = 8,
    checkpoints_dir: Path | None = None,
) -> JobRunner:
    defaults = TrainingDefaults(experiment="e", model_name="m")
    runner = JobRunner(
        store,
        datasets,
        InlineJobExecutor(store, datasets, defaults, pipeline=pipeline),
        model_name="m",
        max_queued=max_queued,
        checkpoints_dir=checkpoints_dir,
        poll_seconds=0.2,
        # As the service does: renew three times per lease (Postgres; SQLite has none).
        lease_check_seconds=getattr(store, "lease_seconds", 30.0) / 3,
    )
    return runner


def simulate_crash(runner: JobRunner, store: JobStore) -> None:
    """The runner's process "dies": it claims nothing more and renews no lease (its
    dispatcher threads, blocked in the stand-in pipeline, stay). With Postgres, wait until
    its leases ran out, as another replica would see them."""
    runner._stopping = True
    runner._stopped.set()
    lease = getattr(store, "lease_seconds", None)
    if lease is not None:
        time.sleep(lease + 0.5)


def submit(runner: JobRunner, key: str | None = None, **params: Any) -> Job:
    body = {"epochs": 2, **params}
    job, _ = runner.submit(
        params=TrainingParams(**body),
        dataset_id=None,
        register=True,
        request_body=body,
        idempotency_key=key,
    )
    return job


def start_runner(store: JobStore, datasets: DatasetStore) -> tuple[JobRunner, StandInPipeline]:
    """A started runner whose pipeline blocks until the test opens `pipeline.gate`."""
    pipeline = StandInPipeline()
    runner = make_runner(store, datasets, pipeline)
    runner.start()
    return runner, pipeline


def wait_for_end(store: JobStore, job: Job, timeout: float = 30) -> Job:
    """The job as stored once it reached a final state."""
    done: Job = wait_until(
        lambda: (j := store.get(job.job_id)).status.is_final and j, timeout, "job to finish"
    )
    return done


def run_one_job(store: JobStore, datasets: DatasetStore, **params: Any) -> tuple[Job, JobRunner]:
    """Submit one job to a started runner whose pipeline never blocks; wait for its end."""
    pipeline = StandInPipeline()
    pipeline.gate.set()
    runner = make_runner(store, datasets, pipeline)
    runner.start()
    return wait_for_end(store, submit(runner, **params)), runner
