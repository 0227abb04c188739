"""The training pipeline: dataset -> fit -> MLflow run -> registered version with alias.

Jobs (worker.py) and the command line (cli.py, the MLproject entry point) both run this one
function, so a model trained through the API and one trained by `mlflow run` are the same.

With a `checkpoint` file, every epoch is checkpointed before its metrics are logged, and a
checkpoint found at start resumes: the same MLflow run is reopened, the epochs the
checkpoint holds but the run lacks are logged (the process may have died between the two),
and training continues at the next epoch. So the run's history has each epoch once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from training_service.checkpoints import CheckpointFile
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
    checkpoint: CheckpointFile | None = None,
    workers: int = 0,
) -> PipelineOutcome:
    """Train on `dataset`, log everything to one MLflow run and, if asked, register the model.

    A registered version gets provenance tags and the `staging` alias; promotion to
    `production` is the orchestrator's decision, not this service's.
    """
    saved = checkpoint.load() if checkpoint is not None else None
    if saved is not None:
        run_id = saved["run_id"]
    with tracked_run(experiment, run_name=job_id, run_id=run_id) as run:
        if on_run_started is not None:
            on_run_started(run.run_id)
        if saved is None:
            tags = {"job_id": job_id}
            if request_id is not None:
                tags["request_id"] = request_id
            run.log_setup(dataset, params, tags=tags)
        else:
            logged = run.logged_epochs()
            for done in saved["history"]:
                if done["epoch"] not in logged:
                    run.log_epoch(EpochResult(**done))
            if on_epoch is not None and saved["history"]:
                on_epoch(EpochResult(**saved["history"][-1]))

        def epoch_done(epoch: EpochResult) -> None:
            run.log_epoch(epoch)
            if on_epoch is not None:
                on_epoch(epoch)

        def save_checkpoint(state: dict[str, Any]) -> None:
            if checkpoint is None:
                raise RuntimeError("save_checkpoint called for a job without a checkpoint")
            checkpoint.save({**state, "run_id": run.run_id})

        result = fit(
            dataset,
            params,
            on_epoch=epoch_done,
            should_stop=should_stop,
            workers=workers,
            resume=saved,
            save_checkpoint=save_checkpoint if checkpoint is not None else None,
        )
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
