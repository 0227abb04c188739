"""What a hyperparameter search job is (POST /v1/tune), torch-free: the API process uses it.

A search job is a `Job` like a training job: its `params` hold the fixed training options
plus, under the key `tune`, the `TuneSpec` (search space, number of trials, metric and its
direction). Its `epochs` column holds the number of trials and its `epoch` column the trials
done, so progress reads "trials done / total". Its `metrics` hold the best trial so far:
that trial's test_accuracy / test_loss / train_loss, plus `best_*` numbers (the trial's
number, its value of the metric, its sampled learning rate, batch size, weight decay, and
the index of its architecture among the searched ones) and `trials_failed`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from training_service.networks import DEFAULT_ARCHITECTURE, check_architecture

#: Metrics a trial can be judged by (the names every run logs) and the better direction.
METRIC_MODES: dict[str, Literal["max", "min"]] = {
    "test_accuracy": "max",
    "test_loss": "min",
    "train_loss": "min",
}
#: The training options a search samples; the others are fixed for every trial.
SEARCHED = ("learning_rate", "batch_size", "weight_decay", "architecture")
#: The key of a job's params that makes it a search job.
TUNE_KEY = "tune"


BatchSize = Annotated[int, Field(ge=1, le=4096)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FloatRange(_Strict):
    """A positive interval, sampled uniformly or (log=true) log-uniformly."""

    low: float = Field(gt=0.0, description="Lower bound (> 0).")
    high: float = Field(gt=0.0, description="Upper bound (> low).")
    log: bool = Field(default=True, description="Sample on a log scale.")

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if not self.low < self.high:
            raise ValueError(f"low ({self.low:g}) must be below high ({self.high:g})")
        return self


def _learning_rates() -> FloatRange:
    return FloatRange(low=1e-3, high=1e-1, log=True)


def _weight_decays() -> FloatRange:
    return FloatRange(low=1e-5, high=1e-2, log=True)


class SearchSpace(_Strict):
    """Where each trial's training options are drawn from (every part optional)."""

    learning_rate: FloatRange = Field(
        default_factory=_learning_rates, description="Peak learning rate, at most 10."
    )
    batch_size: list[BatchSize] = Field(
        default_factory=lambda: [32, 64, 128],
        min_length=1,
        max_length=16,
        description="Batch sizes to choose from (1..4096).",
    )
    weight_decay: FloatRange = Field(default_factory=_weight_decays, description="At most 1.")
    architecture: list[str] = Field(
        default_factory=lambda: [DEFAULT_ARCHITECTURE],
        min_length=1,
        max_length=16,
        description="Registered network names to choose from.",
    )

    @field_validator("learning_rate")
    @classmethod
    def _lr_bound(cls, value: FloatRange) -> FloatRange:
        if value.high > 10.0:
            raise ValueError("high must be at most 10")
        return value

    @field_validator("weight_decay")
    @classmethod
    def _wd_bound(cls, value: FloatRange) -> FloatRange:
        if value.high > 1.0:
            raise ValueError("high must be at most 1")
        return value

    @field_validator("batch_size", "architecture")
    @classmethod
    def _distinct(cls, values: list[Any]) -> list[Any]:
        if len(set(values)) != len(values):
            raise ValueError("choices must be distinct")
        return values

    @field_validator("architecture")
    @classmethod
    def _registered(cls, names: list[str], info: ValidationInfo) -> list[str]:
        if info.context and info.context.get("stored"):  # a job's: checked when submitted
            return names
        return [check_architecture(name) for name in names]


class TuneSpec(_Strict):
    """The search itself, as stored under params["tune"] of a search job."""

    search_space: SearchSpace
    num_trials: int
    metric: str
    mode: Literal["max", "min"]


def tune_spec_of(params: dict[str, Any]) -> TuneSpec | None:
    """The search of a job's params, None for a training job."""
    raw = params.get(TUNE_KEY)
    # A stored search was checked when submitted: a network unregistered since then must
    # not make its job unreadable.
    return None if raw is None else TuneSpec.model_validate(raw, context={"stored": True})


def best_numbers(
    number: int, value: float, params: dict[str, Any], spec: TuneSpec
) -> dict[str, float]:
    """A trial's `best_*` entries of the job's metrics (numbers only: the store's column)."""
    return {
        "best_trial": float(number),
        "best_value": float(value),
        "best_learning_rate": float(params["learning_rate"]),
        "best_batch_size": float(params["batch_size"]),
        "best_weight_decay": float(params["weight_decay"]),
        "best_architecture": float(spec.search_space.architecture.index(params["architecture"])),
    }


class BestTrial(BaseModel):
    trial: int = Field(description="Trial number (0-based, in the order trials started).")
    value: float = Field(description="The trial's final value of the search's metric.")
    params: dict[str, float | int | str] = Field(
        description="The sampled learning_rate, batch_size, weight_decay and architecture."
    )


class TuneProgress(BaseModel):
    """The search part of a job (absent on training jobs)."""

    search_space: SearchSpace
    num_trials: int
    metric: str
    mode: Literal["max", "min"]
    trials_done: int = Field(description="Trials that ended (succeeded or failed).")
    trials_failed: int
    best: BestTrial | None = Field(description="The best trial so far (final when done).")

    @classmethod
    def of(cls, spec: TuneSpec, trials_done: int, metrics: dict[str, float] | None) -> Self:
        numbers = metrics or {}
        best = None
        if "best_trial" in numbers:
            best = BestTrial(
                trial=int(numbers["best_trial"]),
                value=numbers["best_value"],
                params={
                    "learning_rate": numbers["best_learning_rate"],
                    "batch_size": int(numbers["best_batch_size"]),
                    "weight_decay": numbers["best_weight_decay"],
                    "architecture": spec.search_space.architecture[
                        int(numbers["best_architecture"])
                    ],
                },
            )
        return cls(
            search_space=spec.search_space,
            num_trials=spec.num_trials,
            metric=spec.metric,
            mode=spec.mode,
            trials_done=trials_done,
            trials_failed=int(numbers.get("trials_failed", 0)),
            best=best,
        )


def stored_search(params: dict[str, Any]) -> TuneSpec:
    """The search of a search job's params (ValueError for a training job's)."""
    spec = tune_spec_of(params)
    if spec is None:
        raise ValueError("not a search job: its params have no 'tune' entry")
    return spec
