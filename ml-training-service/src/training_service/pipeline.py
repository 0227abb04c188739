"""The training pipeline: dataset -> fit -> MLflow run -> registered version with alias.

Jobs (worker.py) and the command line (cli.py, the MLproject entry point) both run this one
function, so a model trained through the API and one trained by `mlflow run` are the same.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from training_service.data import Dataset
from training_service.params import EpochResult, TrainingParams
from training_service.registry import tag_and_promote
from training_service.tracking import tracked_run
from training_service.train import TrainingResult, fit


@dataclass(frozen=True)
class PipelineOutcome:
    result: TrainingResult
    run_id: str
    model_version: str | None


def run_training_pipeline(
    dataset: Dataset,
    params: TrainingParams,
    *,
    experiment: str,
    model_name: str,
    register: bool,
    job_id: str,
    request_id: str | None = None,
    on_run_started: Callable[[str], None] | None = None,
    on_epoch: Callable[[EpochResult], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    run_id: str | None = None,
) -> PipelineOutcome:
    """Train on `dataset`, log everything to one MLflow run and, if asked, register the model.

    A registered version gets provenance tags and the `staging` alias; promotion to
    `production` is the orchestrator's decision, not this service's.
    """
    with tracked_run(experiment, run_name=job_id, run_id=run_id) as run:
        if on_run_started is not None:
            on_run_started(run.run_id)
        tags = {"job_id": job_id}
        if request_id is not None:
            tags["request_id"] = request_id
        run.log_setup(dataset, params, tags=tags)

        def epoch_done(epoch: EpochResult) -> None:
            run.log_epoch(epoch)
            if on_epoch is not None:
                on_epoch(epoch)

        result = fit(dataset, params, on_epoch=epoch_done, should_stop=should_stop)
        version = run.log_outcome(dataset, result, model_name if register else None)
        if version is not None:
            tag_and_promote(
                model_name,
                version,
                test_accuracy=result.final.test_accuracy,
                dataset=dataset,
                job_id=job_id,
            )
    return PipelineOutcome(result=result, run_id=run.run_id, model_version=version)
