"""The MLflow side of a hyperparameter search, shared by the local and the Ray search.

One parent run per search job (params: the search space, num_trials, metric; tag job_id),
one nested child run per trial (tag `mlflow.parentRunId`) with the trial's params and
per-epoch metrics. A trial trains with `train.fit`, the service's own fit code. A trial
that fails ends its child run FAILED with a `failure` tag and is recorded as failed; a
cancelled one ends it KILLED. When the search ends the parent logs best_* metrics and
params, and the best trial's model (logged by its child run) is registered like a
training job's: registry.py's tags and the `staging` alias.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import mlflow

from training_service.data import Dataset
from training_service.jobs.records import Job, JobOutcome, JobStatus, TrainingDefaults
from training_service.mlflow_client import MlflowUnavailableError
from training_service.params import TrainingCancelled, TrainingParams
from training_service.recovery import FAILURE_TAG
from training_service.registry import register_logged_model, tag_and_promote
from training_service.tracking import TrackedRun, tracked_run
from training_service.train import fit
from training_service.tune_board import TrialRecord
from training_service.tune_spec import TUNE_KEY, TuneSpec, stored_search
from training_service.worker import epoch_metrics

CANCELLED = "cancelled while running"
#: What a search calls to run its trials: (parent run id, experiment id) -> None; it raises
#: TrainingCancelled when asked to stop.
Trials = Callable[[str, str], None]


class SearchFailedError(RuntimeError):
    """No trial of the search succeeded."""


def base_params(params: dict[str, Any]) -> TrainingParams:
    """The fixed training options of a search job (its params without the search)."""
    return TrainingParams(**{k: v for k, v in params.items() if k != TUNE_KEY})


def distributions(spec: TuneSpec) -> dict[str, Any]:
    """The search space as Optuna distributions (for Optuna's ask and for OptunaSearch)."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    space = spec.search_space
    return {
        "learning_rate": FloatDistribution(
            space.learning_rate.low, space.learning_rate.high, log=space.learning_rate.log
        ),
        "batch_size": CategoricalDistribution(space.batch_size),
        "weight_decay": FloatDistribution(
            space.weight_decay.low, space.weight_decay.high, log=space.weight_decay.log
        ),
        "architecture": CategoricalDistribution(space.architecture),
    }


def run_trial(
    dataset: Dataset,
    base: TrainingParams,
    number: int,
    sampled: dict[str, Any],
    *,
    job_id: str,
    parent_run_id: str,
    experiment_id: str,
    metric: str,
    worth_logging: Callable[[float], bool],
    should_stop: Callable[[], bool],
    workers: int = 0,
) -> TrialRecord:
    """Train one trial in a child run of `parent_run_id`; raises only TrainingCancelled."""
    chosen = {name: sampled[name] for name in ("learning_rate", "batch_size", "weight_decay")}
    chosen["architecture"] = sampled["architecture"]
    params = replace(base, **chosen)
    run_id: str | None = None
    try:
        run = mlflow.start_run(
            experiment_id=experiment_id,
            run_name=f"{job_id}-trial-{number}",
            nested=True,
            parent_run_id=parent_run_id,
            tags={"job_id": job_id, "trial": str(number)},
        )
        run_id = run.info.run_id
        tracked = TrackedRun(run_id)
        tracked.log_setup(dataset, params, tags={"job_id": job_id})
        result = fit(
            dataset, params, on_epoch=tracked.log_epoch, should_stop=should_stop, workers=workers
        )
        final = epoch_metrics(result.final)
        value = final[metric]
        model_uri = None
        if worth_logging(value):
            tracked.log_outcome(dataset, result, None)
            logged = mlflow.last_logged_model()
            if logged is None:
                raise RuntimeError("MLflow did not return the trial's logged model")
            model_uri = f"models:/{logged.model_id}"
    except TrainingCancelled:
        if run_id is not None:
            mlflow.end_run("KILLED")
        raise
    except Exception as exc:
        error = f"{type(exc).__name__}: {' '.join(str(exc).split())[:500]}"
        if run_id is not None:
            try:
                mlflow.set_tag(FAILURE_TAG, error)
                mlflow.end_run("FAILED")
            except Exception:
                mlflow.end_run("FAILED")  # pops the run here; recovery ends it on the server
        return TrialRecord(number, run_id, chosen, error=error)
    mlflow.end_run("FINISHED")
    return TrialRecord(number, run_id, chosen, final, value, model_uri)


def run_search(
    job: Job,
    dataset: Dataset,
    defaults: TrainingDefaults,
    *,
    executor: str,
    started: Callable[[str], None],
    trials: Trials,
    results: Callable[[], tuple[TrialRecord | None, list[TrialRecord], dict[str, float]]],
) -> JobOutcome:
    """The parent run around `trials`, then the best trial's registration; never raises.

    `results` returns (best trial, every ended trial, the job's metrics) after `trials`.
    """
    spec = stored_search(job.params)
    parent_id: str | None = None
    try:
        with tracked_run(defaults.experiment, run_name=job.job_id) as parent:
            parent_id = parent.run_id
            started(parent_id)
            _log_search_setup(job, spec, dataset, executor)
            # The dataset is logged here first: trials' runs then only link to it (MLflow
            # fails concurrent first inserts of one dataset with a UNIQUE constraint error).
            parent.log_dataset(dataset)
            active = mlflow.active_run()
            experiment_id = active.info.experiment_id if active else ""
            trials(parent_id, experiment_id)
            best, ended, metrics = results()
            version = _finish(job, spec, dataset, defaults, best, ended)
    except TrainingCancelled:
        return JobOutcome(JobStatus.CANCELLED, run_id=parent_id, error=CANCELLED)
    except MlflowUnavailableError as exc:
        return JobOutcome(
            JobStatus.FAILED,
            run_id=exc.run_id,
            error=str(exc),
            run_left_running=exc.run_left_running,
        )
    except Exception as exc:  # the search failed (every trial did, or the searcher)
        error = str(exc) if isinstance(exc, SearchFailedError) else f"{type(exc).__name__}: {exc}"
        return JobOutcome(JobStatus.FAILED, run_id=parent_id, error=error[:2000])
    finally:
        if parent_id is not None:
            end_open_children(parent_id)
    return JobOutcome(JobStatus.SUCCEEDED, metrics=metrics, run_id=parent_id, model_version=version)


def _log_search_setup(job: Job, spec: TuneSpec, dataset: Dataset, executor: str) -> None:
    base = base_params(job.params)
    space = spec.search_space
    mlflow.log_params(
        {
            "num_trials": spec.num_trials,
            "metric": spec.metric,
            "mode": spec.mode,
            "search_space.learning_rate": space.learning_rate.model_dump_json(),
            "search_space.batch_size": json.dumps(space.batch_size),
            "search_space.weight_decay": space.weight_decay.model_dump_json(),
            "search_space.architecture": json.dumps(space.architecture),
            "epochs": base.epochs,
            "optimizer": base.optimizer,
            "seed": base.seed,
            "dataset_id": dataset.info.dataset_id,
        }
    )
    tags = {"job_id": job.job_id, "executor": executor, "job_kind": "tune"}
    if job.request_id is not None:
        tags["request_id"] = job.request_id
    mlflow.set_tags(tags)


def _finish(
    job: Job,
    spec: TuneSpec,
    dataset: Dataset,
    defaults: TrainingDefaults,
    best: TrialRecord | None,
    ended: list[TrialRecord],
) -> str | None:
    """Log the best trial on the parent and register its model; returns the version."""
    if best is None or best.value is None or best.model_uri is None:
        errors = [record.error for record in ended if record.error]
        first = f"; first error: {errors[0]}" if errors else ""
        raise SearchFailedError(f"all {len(ended)} trials of the search failed{first}")
    mlflow.log_metrics(
        {
            f"best_{spec.metric}": best.value,
            **{f"best_{name}": value for name, value in best.metrics.items()},
            "best_trial": float(best.number),
            "trials_failed": float(sum(1 for record in ended if record.error)),
        }
    )
    mlflow.log_params({f"best.{name}": value for name, value in best.params.items()})
    mlflow.set_tag("best_run_id", best.run_id or "")
    if not job.register:
        return None
    version = register_logged_model(best.model_uri, defaults.model_name)
    tag_and_promote(
        defaults.model_name,
        version,
        test_accuracy=best.metrics["test_accuracy"],
        dataset=dataset,
        job_id=job.job_id,
    )
    return version


def end_open_children(parent_run_id: str) -> None:
    """End child runs a stopped search left RUNNING (a trial process Ray ended) as KILLED."""
    client = mlflow.MlflowClient()
    try:
        parent = client.get_run(parent_run_id)
        children = client.search_runs(
            [parent.info.experiment_id],
            filter_string=f"tags.mlflow.parentRunId = '{parent_run_id}'",
            max_results=1000,
        )
        for child in children:
            if child.info.status == "RUNNING":
                client.set_terminated(child.info.run_id, "KILLED")
    except Exception:  # MLflow away: the parent's own outcome says so
        return
