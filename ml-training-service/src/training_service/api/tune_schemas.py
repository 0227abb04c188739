"""The body of POST /v1/tune: a /v1/train body's fixed options plus the search.

The dataset, optimizer, epochs, augmentation, early stopping, seed and register fields are
POST /v1/train's (the same fields, constraints and descriptions); learning_rate,
batch_size, weight_decay and architecture are searched instead (`search_space`).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from training_service.api.schemas import Seed, StrictBody, TrainRequest
from training_service.tune_spec import METRIC_MODES, SearchSpace, TuneSpec


def _as_train(name: str) -> Any:
    """POST /v1/train's declaration of a field (default, constraints, description)."""
    return TrainRequest.model_fields[name]


class TuneRequest(StrictBody):
    dataset_id: str | None = _as_train("dataset_id")
    optimizer: Literal["adamw", "adam", "sgd"] = _as_train("optimizer")
    epochs: int = Field(default=5, ge=1, le=200, description="Epochs of every trial.")
    augmentation: bool = _as_train("augmentation")
    early_stopping_patience: int | None = _as_train("early_stopping_patience")
    seed: Seed = Field(
        default=42, description="Seeds the sampler (Optuna's TPE) and every trial's training."
    )
    register_model: bool = Field(
        default=True,
        alias="register",
        description="Register the best trial's model under MODEL_NAME with the alias "
        "'staging', as POST /v1/train does.",
    )
    search_space: SearchSpace = Field(
        default_factory=SearchSpace,
        description="Where trials' learning_rate, batch_size, weight_decay and "
        "architecture are drawn from; every part is optional.",
    )
    num_trials: int = Field(default=10, ge=1, le=50, description="Trials to run (1..50).")
    metric: str = Field(
        default="test_accuracy",
        description="What picks the best trial: test_accuracy (higher is better), "
        "test_loss or train_loss (lower is better); the value after a trial's last epoch.",
        json_schema_extra={"enum": list(METRIC_MODES)},
    )

    @field_validator("metric")
    @classmethod
    def _logged(cls, name: str) -> str:
        if name not in METRIC_MODES:
            raise ValueError(f"unknown metric '{name}'; the service logs {', '.join(METRIC_MODES)}")
        return name

    def search(self) -> TuneSpec:
        return TuneSpec(
            search_space=self.search_space,
            num_trials=self.num_trials,
            metric=self.metric,
            mode=METRIC_MODES[self.metric],
        )
