"""One Ray Tune trial of a search job, and the stopper that ends the search on a cancel.

`tune_trial` is the trainable (1 CPU): it takes its number from the job's `TuneControl`,
trains the sampled options in a child run of the search's parent (tune_trials.run_trial),
posts the result to the mailbox and reports the metric to Ray Tune, so OptunaSearch learns
from it. A failed trial raises after posting, so Tune and Optuna count it as failed.
"""

from __future__ import annotations

import time
from typing import Any

import ray
from ray import tune

from training_service.data import DatasetStore
from training_service.networks import NETWORKS
from training_service.ray_control import RayJobSpec
from training_service.tune_spec import stored_search
from training_service.tune_trials import base_params, run_trial
from training_service.worker import CANCEL_POLL_SECONDS, configure_training


class _Poll:
    """True once the job's mailbox says stop (asked at most every CANCEL_POLL_SECONDS)."""

    def __init__(self, control: Any) -> None:
        self._control = control
        self._last = 0.0
        self._stop = False

    def __call__(self) -> bool:
        now = time.monotonic()
        if not self._stop and now - self._last >= CANCEL_POLL_SECONDS:
            self._last = now
            self._stop = bool(ray.get(self._control.stop_requested.remote()))
        return self._stop


class StopOnRequest(tune.Stopper):
    """Stops the whole search (no new trial, running ones stopped) after a cancel."""

    def __init__(self, control: Any) -> None:
        self._requested = _Poll(control)

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        return self._requested()

    def stop_all(self) -> bool:
        return self._requested()


def tune_trial(
    config: dict[str, Any],
    *,
    spec: RayJobSpec,
    control: Any,
    parent_run_id: str,
    experiment_id: str,
) -> None:
    """Ray Tune's trainable: `config` holds the options OptunaSearch sampled."""
    job = spec.job
    search = stored_search(job.params)
    NETWORKS.update(spec.networks)
    configure_training(spec.tracking_uri, 1, spec.mlflow_environment)
    dataset = DatasetStore(spec.datasets_dir).load(job.dataset_id)
    number = int(ray.get(control.next_number.remote()))
    record = run_trial(
        dataset,
        base_params(job.params),
        number,
        config,
        job_id=job.job_id,
        parent_run_id=parent_run_id,
        experiment_id=experiment_id,
        metric=search.metric,
        worth_logging=lambda value: bool(ray.get(control.worth_logging.remote(value))),
        should_stop=_Poll(control),
        workers=spec.defaults.dataloader_workers,
    )
    ray.get(control.trial_ended.remote(record))
    if record.error is not None:
        raise RuntimeError(f"trial {number} failed: {record.error}")
    tune.report({search.metric: record.value})
