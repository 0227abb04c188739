"""The score board of one hyperparameter search: trials' results and the best one so far.

Torch-free and Ray-free. The local search (tune_local.py) keeps a `TrialBoard` in its
process; on Ray, `TuneControl` (the job's mailbox, a Ray actor) holds it, so trials running
in parallel on different nodes share one board, and each trial's end becomes an
("epoch_finished", trials_done, metrics) event the service relays to the job's progress.

A trial logs its model only when `worth_logging` says its value beats the best finished
trial (logging a model costs seconds); it then `confirm`s. So the best trial always has a
model to register, and trials that were never the best cost no model upload.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from training_service.ray_control import JobControl
from training_service.tune_spec import TuneSpec, best_numbers


@dataclass(frozen=True)
class TrialRecord:
    """How one trial ended: `error` None when it succeeded (then `value` is its metric)."""

    number: int
    run_id: str | None
    params: dict[str, float | int | str]
    metrics: dict[str, float] = field(default_factory=dict)
    value: float | None = None
    model_uri: str | None = None
    error: str | None = None


class TrialBoard:
    """Results of a search's trials, in the order they ended."""

    def __init__(self, spec: TuneSpec) -> None:
        self._spec = spec
        self._started = 0
        self.ended: list[TrialRecord] = []
        self.best: TrialRecord | None = None

    def next_number(self) -> int:
        number, self._started = self._started, self._started + 1
        return number

    def _better(self, value: float) -> bool:
        if self.best is None or self.best.value is None:
            return True
        mode: Literal["max", "min"] = self._spec.mode
        return value > self.best.value if mode == "max" else value < self.best.value

    def worth_logging(self, value: float) -> bool:
        """Is `value` better than the best trial with a logged model?"""
        return self._better(value)

    def trial_ended(self, record: TrialRecord) -> tuple[int, dict[str, float]]:
        """Record a trial; returns (trials done, the job's metrics: best so far)."""
        self.ended.append(record)
        if (
            record.error is None
            and record.value is not None
            and record.model_uri is not None
            and self._better(record.value)
        ):
            self.best = record
        return len(self.ended), self.job_metrics()

    def job_metrics(self) -> dict[str, float]:
        failed = sum(1 for record in self.ended if record.error is not None)
        metrics = {"trials_failed": float(failed)}
        best = self.best
        if best is not None and best.value is not None:
            metrics.update(best.metrics)
            metrics.update(best_numbers(best.number, best.value, best.params, self._spec))
        return metrics


class TuneControl(JobControl):
    """A search job's mailbox (a Ray actor): the job's stop flag and its `TrialBoard`."""

    def __init__(self, spec: TuneSpec) -> None:
        super().__init__()
        self._board = TrialBoard(spec)

    def next_number(self) -> int:
        return self._board.next_number()

    def worth_logging(self, value: float) -> bool:
        return self._board.worth_logging(value)

    def trial_ended(self, record: TrialRecord) -> None:
        done, metrics = self._board.trial_ended(record)
        self._events.append(("epoch_finished", done, metrics))

    def job_metrics(self) -> dict[str, float]:
        return self._board.job_metrics()

    def best(self) -> TrialRecord | None:
        return self._board.best

    def ended(self) -> list[TrialRecord]:
        return list(self._board.ended)
