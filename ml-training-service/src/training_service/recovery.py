"""Ending the MLflow runs that no process will end: after a crash, or after an MLflow outage.

MLflow only ends a run when the process that started it says so. A job whose process died
mid-training without a checkpoint is marked failed when the service starts again, or, with
the Postgres store, by another replica once the dead one's lease ran out
(`jobs.lifecycle.recover_interrupted`), and a job that failed because MLflow stopped answering
could not tell MLflow either: both runs would stay RUNNING forever. The job's run id is
recorded as soon as the run starts, so `RunCloser` ends those runs as FAILED with a
`failure` tag saying why, in a background thread that retries every
MLFLOW_RUN_CLOSE_RETRY_SECONDS until MLflow answers: MLflow may be slow or down, and
importing its client takes seconds that /health must not wait for.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, replace

from training_service.mlflow_client import apply_client_environment, is_mlflow_outage

log = logging.getLogger(__name__)

FAILURE_TAG = "failure"
FAILURE_TEXT = "the training service stopped while this run was in progress"
OUTAGE_FAILURE_TEXT = "MLflow did not answer during this run; the job failed"


@dataclass(frozen=True)
class OpenRun:
    """A run left RUNNING: its job, and the reason written to its `failure` tag."""

    job_id: str
    run_id: str
    reason: str = FAILURE_TEXT
    attempts: int = 0  # failed tries so far (only the first is logged as a warning)


def close_runs(tracking_uri: str, runs: list[OpenRun]) -> list[OpenRun]:
    """End the still-RUNNING `runs` as FAILED; returns those to try again (MLflow is down).

    A run that ended meanwhile is left alone; one MLflow refuses (deleted) is given up.
    """
    from mlflow import MlflowClient  # only when a run was left open: the API needs none

    client = MlflowClient(tracking_uri)
    pending = []
    for run in runs:
        fields = {"job_id": run.job_id, "run_id": run.run_id}
        try:
            if client.get_run(run.run_id).info.status != "RUNNING":
                continue
            client.set_tag(run.run_id, FAILURE_TAG, run.reason)
            client.set_terminated(run.run_id, status="FAILED")
        except Exception as exc:  # the job is failed anyway; only its run stays open
            outage = is_mlflow_outage(exc)
            log.log(
                logging.DEBUG if run.attempts else logging.WARNING,
                "could not end MLflow run %s of job %s%s: %s",
                run.run_id,
                run.job_id,
                "; retrying when MLflow answers" if outage else "",
                exc,
                extra=fields,
            )
            if outage:
                pending.append(replace(run, attempts=run.attempts + 1))
            continue
        log.info("MLflow run %s of job %s ended as FAILED", run.run_id, run.job_id, extra=fields)
    return pending


class RunCloser:
    """Ends open runs in one background thread, retrying until MLflow answers."""

    def __init__(
        self, tracking_uri: str, mlflow_environment: Mapping[str, str], retry_seconds: float
    ) -> None:
        self._tracking_uri = tracking_uri
        self._mlflow_environment = mlflow_environment
        self._retry_seconds = retry_seconds
        self._pending: list[OpenRun] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def close(self, *runs: OpenRun) -> None:
        """End `runs` as FAILED as soon as MLflow answers (returns at once)."""
        with self._lock:
            self._pending.extend(runs)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._close_pending, name="close-open-runs", daemon=True
                )
                self._thread.start()
        self._wake.set()

    def _close_pending(self) -> None:
        apply_client_environment(self._mlflow_environment)  # each try fails fast when down
        left: list[OpenRun] = []
        while True:
            self._wake.wait(self._retry_seconds if left else None)
            self._wake.clear()
            with self._lock:
                runs, self._pending = [*left, *self._pending], []
            try:
                left = close_runs(self._tracking_uri, runs)
            except Exception:  # e.g. the MLflow client failed to import: keep the runs
                log.exception("could not end open MLflow runs")
                left = runs
