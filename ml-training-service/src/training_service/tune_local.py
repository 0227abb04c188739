"""The hyperparameter search of TRAINING_EXECUTOR=local: trials one after another, here.

A search job runs in the job's pool process like a training job (worker.py hands it
over). Optuna's TPE sampler, seeded with the job's seed, proposes each trial's learning
rate, batch size, weight decay and architecture (ask), the trial trains in a child run
(tune_trials.py), and its value or failure goes back to the sampler (tell). After every
trial the job's progress shows the trials done and the best so far. A cancel stops the
running trial at its next batch and no further trial starts.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import optuna

from training_service.data import DatasetNotFoundError, DatasetStore
from training_service.jobs.lifecycle import ProgressReporter
from training_service.jobs.records import Job, JobOutcome, JobStatus, TrainingDefaults
from training_service.params import TrainingCancelled
from training_service.tune_board import TrialBoard
from training_service.tune_spec import stored_search
from training_service.tune_trials import base_params, distributions, run_search, run_trial

log = logging.getLogger(__name__)


def run_tune_job(
    job: Job,
    progress: ProgressReporter,
    datasets: DatasetStore,
    defaults: TrainingDefaults,
    should_stop: Callable[[], bool],
) -> JobOutcome:
    """Run a search job's trials in this process; never raises."""
    try:
        return _search(job, progress, datasets, defaults, should_stop)
    except Exception as exc:  # before the parent run exists (run_search catches the rest)
        log.exception("job %s: the search could not start", job.job_id)
        return JobOutcome(JobStatus.FAILED, error=f"{type(exc).__name__}: {exc}"[:2000])


def _search(
    job: Job,
    progress: ProgressReporter,
    datasets: DatasetStore,
    defaults: TrainingDefaults,
    should_stop: Callable[[], bool],
) -> JobOutcome:
    spec = stored_search(job.params)
    base = base_params(job.params)
    try:
        dataset = datasets.load(job.dataset_id)
    except DatasetNotFoundError:
        return JobOutcome(
            JobStatus.FAILED, error=f"dataset '{job.dataset_id}' no longer exists in DATA_DIR"
        )
    board = TrialBoard(spec)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        direction="maximize" if spec.mode == "max" else "minimize",
        sampler=optuna.samplers.TPESampler(seed=base.seed),
    )
    space = distributions(spec)

    def trials(parent_run_id: str, experiment_id: str) -> None:
        for _ in range(spec.num_trials):
            if should_stop():
                raise TrainingCancelled
            trial = study.ask(space)
            record = run_trial(
                dataset,
                base,
                board.next_number(),
                trial.params,
                job_id=job.job_id,
                parent_run_id=parent_run_id,
                experiment_id=experiment_id,
                metric=spec.metric,
                worth_logging=board.worth_logging,
                should_stop=should_stop,
                workers=defaults.dataloader_workers,
            )
            if record.error is None and record.value is not None:
                study.tell(trial, record.value)
            else:
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
            done, metrics = board.trial_ended(record)
            progress.epoch_finished(done, metrics)

    return run_search(
        job,
        dataset,
        defaults,
        executor="local",
        started=progress.run_started,
        trials=trials,
        results=lambda: (board.best, list(board.ended), board.job_metrics()),
    )
