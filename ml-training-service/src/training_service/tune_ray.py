"""The hyperparameter search of TRAINING_EXECUTOR=ray: a driver task running Ray Tune.

The service submits `drive_tune` as a 0-CPU Ray task (jobs/tune_executor.py), beside the
job's `TuneControl` mailbox. The task opens the parent run and runs a Ray Tune `Tuner`
whose searcher is `OptunaSearch` (TPE, seeded with the job's seed) over the job's search
space: `num_trials` trials, each one Ray Tune trial of 1 CPU running the service's fit
code (tune_ray_trial.py), at most as many at once as the cluster has CPUs. Trials post
their results to the mailbox, which the service relays as progress; a cancel is read there
by the trials (they stop at their next batch) and by a Tune stopper (no trial starts
after it). Ray Tune's run folder under DATA_DIR is removed at the end.

Only this module's functions import Ray Tune, torch and MLflow: the service imports the
module to submit `drive_tune` without loading them.
"""

from __future__ import annotations

import shutil
from typing import Any

from training_service.data import DatasetNotFoundError, DatasetStore
from training_service.jobs.records import JobOutcome, JobStatus
from training_service.networks import NETWORKS
from training_service.ray_control import RayJobSpec
from training_service.tune_spec import stored_search


def drive_tune(spec: RayJobSpec, control: Any) -> JobOutcome:
    """Run `spec.job`'s search with Ray Tune; never raises (the outcome says how it ended)."""
    import ray
    from ray import tune
    from ray.tune.search.optuna import OptunaSearch

    from training_service.tune_ray_trial import StopOnRequest, tune_trial
    from training_service.tune_trials import base_params, distributions, run_search
    from training_service.worker import configure_training

    job = spec.job
    search = stored_search(job.params)
    base = base_params(job.params)
    NETWORKS.update(spec.networks)
    configure_training(spec.tracking_uri, 1, spec.mlflow_environment)
    try:
        dataset = DatasetStore(spec.datasets_dir).load(job.dataset_id)
    except DatasetNotFoundError:
        return JobOutcome(
            JobStatus.FAILED, error=f"dataset '{job.dataset_id}' no longer exists in DATA_DIR"
        )

    def trials(parent_run_id: str, experiment_id: str) -> None:
        cpus = int(ray.cluster_resources().get("CPU", 1.0))
        trainable = tune.with_resources(
            tune.with_parameters(
                tune_trial,
                spec=spec,
                control=control,
                parent_run_id=parent_run_id,
                experiment_id=experiment_id,
            ),
            {"cpu": 1},
        )
        tuner = tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(
                search_alg=OptunaSearch(
                    space=distributions(search),
                    metric=search.metric,
                    mode=search.mode,
                    seed=base.seed,
                ),
                num_samples=search.num_trials,
                max_concurrent_trials=max(1, min(search.num_trials, cpus)),
                reuse_actors=True,  # a trial process imports torch and MLflow once
            ),
            run_config=tune.RunConfig(
                name=job.job_id,
                storage_path=str(spec.storage_dir),
                stop=StopOnRequest(control),
                failure_config=tune.FailureConfig(max_failures=0),
                verbose=0,
            ),
        )
        tuner.fit()
        if ray.get(control.stop_requested.remote()):
            from training_service.params import TrainingCancelled

            raise TrainingCancelled

    def results() -> tuple[Any, Any, dict[str, float]]:
        ended = ray.get(control.ended.remote())
        best = ray.get(control.best.remote())
        return best, ended, ray.get(control.job_metrics.remote())

    try:
        return run_search(
            job,
            dataset,
            spec.defaults,
            executor="ray",
            started=lambda run_id: ray.get(control.run_started.remote(run_id)),
            trials=trials,
            results=results,
        )
    finally:
        shutil.rmtree(spec.storage_dir / job.job_id, ignore_errors=True)
