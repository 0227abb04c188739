"""After a crash: close the MLflow runs that interrupted jobs left open.

A job whose process died mid-training is marked failed when the service starts again
(`jobs.lifecycle.fail_interrupted`), but its MLflow run would stay RUNNING forever: MLflow
only ends a run when the process that started it says so. The job's run id is recorded as
soon as the run starts, so the restarted service ends those runs as FAILED, with a
`failure` tag saying why. It runs in a background thread: MLflow may be slow or down at
start-up, and importing the MLflow client takes seconds that /health must not wait for.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

log = logging.getLogger(__name__)

FAILURE_TAG = "failure"
FAILURE_TEXT = "the training service stopped while this run was in progress"


def close_interrupted_runs(tracking_uri: str, runs: Sequence[tuple[str, str]]) -> list[str]:
    """End the still-RUNNING runs of `(job_id, run_id)` pairs as FAILED; returns those ended."""
    from mlflow import MlflowClient  # only after a crash: the API process does not need it

    client = MlflowClient(tracking_uri)
    ended = []
    for job_id, run_id in runs:
        try:
            if client.get_run(run_id).info.status != "RUNNING":
                continue
            client.set_tag(run_id, FAILURE_TAG, FAILURE_TEXT)
            client.set_terminated(run_id, status="FAILED")
        except Exception as exc:  # MLflow down or the run deleted: the job is failed anyway
            log.warning(
                "could not end MLflow run %s of interrupted job %s: %s",
                run_id,
                job_id,
                exc,
                extra={"job_id": job_id},
            )
            continue
        ended.append(run_id)
        log.info(
            "MLflow run %s of interrupted job %s ended as FAILED",
            run_id,
            job_id,
            extra={"job_id": job_id},
        )
    return ended
