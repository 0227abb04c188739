"""The pipeline's params choose the dataset and the network: behaviour runs against the stubs.

A run names an uploaded dataset (``dataset_id``) and trains on it without a new snapshot; a
``shapes`` run builds 32x32 RGB images and scores them as C x H x W instances; a value outside
a param's schema is refused before any task runs. The static checks hold the params to the
training service's document: its architectures, and the defaults of ``POST /v1/train``.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.openapi_contracts import contract
from tests.stubs.training_app import SHAPES
from tests.stubs.world import World, dataset_record

DAG_ID = "mlflow_orchestration_pipeline"
# DAG param -> the TrainRequest field it is sent as
TRAINING_OPTIONS = {
    "architecture": "architecture",
    "optimizer": "optimizer",
    "epochs": "epochs",
    "batch_size": "batch_size",
    "learning_rate": "learning_rate",
    "weight_decay": "weight_decay",
    "augmentation": "augmentation",
    "early_stopping_patience": "early_stopping_patience",
    "seed": "seed",
}


def _train_request_schema() -> dict[str, Any]:
    provider = contract("training")
    return provider.document["components"]["schemas"]["TrainRequest"]["properties"]


def test_training_param_defaults_are_the_services_defaults(dagbag: Any) -> None:
    """Defaults keep today's run: the DAG sends what the service would pick by itself."""
    params = dagbag.dags[DAG_ID].params
    schema = _train_request_schema()
    for param, field in TRAINING_OPTIONS.items():
        assert params[param] == schema[field].get("default"), param


def test_proposed_architectures_are_the_services_networks(dagbag: Any) -> None:
    param = dagbag.dags[DAG_ID].params.get_param("architecture")
    assert param.schema["examples"] == _train_request_schema()["architecture"]["enum"]


@pytest.mark.parametrize(
    "conf",
    [
        {"dataset_source": "imagenet"},
        {"channels": 2},
        {"image_size": 4},
        {"architecture": "resnet18; rm -rf /"},
        {"optimizer": "lbfgs"},
        {"early_stopping_patience": 0},
        {"dataset_count": 5},
    ],
    ids=lambda c: next(iter(c)),
)
def test_a_value_outside_a_params_schema_is_refused_before_anything_runs(
    run_dag: Any, world: World, conf: dict[str, Any]
) -> None:
    from airflow.sdk.exceptions import ParamValidationError

    with pytest.raises(ParamValidationError) as refused:
        run_dag(DAG_ID, conf)

    assert next(iter(conf)) in str(refused.value)
    assert world.requests == []  # no service was called


def test_a_run_on_an_uploaded_dataset_trains_on_it_without_a_new_snapshot(
    run_dag: Any, world: World
) -> None:
    world.datasets["upl0aded"] = dataset_record(
        "upl0aded", "archive", ["cat", "dog"], 24, 3, n_train=80, n_test=20
    )

    result = run_dag(
        DAG_ID,
        {
            "dataset_id": "upl0aded",
            "architecture": "resnet18",
            "epochs": 2,
            "augmentation": True,
            "holdout_samples": 20,
        },
    )

    assert result.state == "success", result.task_states
    assert world.calls("training", "POST", "/v1/datasets") == []
    [lookup] = world.calls("training", "GET", "/v1/datasets/upl0aded")
    assert lookup["status"] == 200
    assert result.xcom("prepare_dataset")["dataset_id"] == "upl0aded"
    [train_call] = world.calls("training", "POST", "/v1/train")
    assert train_call["body"]["dataset_id"] == "upl0aded"
    assert (train_call["body"]["architecture"], train_call["body"]["augmentation"]) == (
        "resnet18",
        True,
    )
    # Held-out images of the uploaded dataset, 3 x 24 x 24 each, scored as they came.
    [predict_call] = world.calls("serving", "POST", "/v1/predict")
    instances = predict_call["body"]["instances"]
    assert len(instances) == 20
    assert (len(instances[0]), len(instances[0][0]), len(instances[0][0][0])) == (3, 24, 24)
    assert result.xcom("validate_pipeline")["holdout_accuracy"] == 1.0


def test_an_unknown_dataset_id_fails_at_once_with_the_services_detail(
    run_dag: Any, world: World
) -> None:
    result = run_dag(DAG_ID, {"dataset_id": "nosuchdataset"})

    assert result.state == "failed"
    assert result.task_states["prepare_dataset"] == "failed"
    assert result.tries["prepare_dataset"] == 1  # a 404 is not retried
    assert result.task_states["submit_training_job"] == "upstream_failed"
    [alert] = world.alerts
    assert "no dataset 'nosuchdataset'" in alert["error"]


def test_a_shapes_run_sends_its_dataset_and_training_options(run_dag: Any, world: World) -> None:
    conf = {
        "dataset_source": "shapes",
        "dataset_count": 500,
        "image_size": 32,
        "channels": 3,
        "architecture": "resnet18",
        "optimizer": "sgd",
        "epochs": 4,
        "weight_decay": 0.0005,
        "early_stopping_patience": 2,
        "holdout_samples": 30,
    }

    result = run_dag(DAG_ID, conf)

    assert result.state == "success", result.task_states
    [snapshot] = world.calls("training", "POST", "/v1/datasets")
    assert snapshot["body"] == {
        "source": "shapes",
        "count": 500,
        "image_size": 32,
        "channels": 3,
        "test_fraction": 0.2,
        "seed": 42,
    }
    [train_call] = world.calls("training", "POST", "/v1/train")
    sent = {k: train_call["body"][k] for k in ("architecture", "optimizer", "epochs")}
    assert sent == {"architecture": "resnet18", "optimizer": "sgd", "epochs": 4}
    assert train_call["body"]["weight_decay"] == 0.0005
    assert train_call["body"]["early_stopping_patience"] == 2
    [predict_call] = world.calls("serving", "POST", "/v1/predict")
    first = predict_call["body"]["instances"][0]
    assert (len(first), len(first[0]), len(first[0][0])) == (3, 32, 32)
    # Serving's answers are class names; the labels of the samples are too.
    assert result.xcom("validate_pipeline")["holdout_accuracy"] == 1.0
    assert result.xcom("prepare_dataset")["classes"] == SHAPES


def test_the_default_run_is_todays_digits_run(run_dag: Any, world: World) -> None:
    result = run_dag(DAG_ID, {"epochs": 2, "holdout_samples": 10})

    assert result.state == "success", result.task_states
    [snapshot] = world.calls("training", "POST", "/v1/datasets")
    assert snapshot["body"] == {"source": "digits", "test_fraction": 0.2, "seed": 42}
    [train_call] = world.calls("training", "POST", "/v1/train")
    assert train_call["body"]["architecture"] == "small_cnn"
    [predict_call] = world.calls("serving", "POST", "/v1/predict")
    first = predict_call["body"]["instances"][0]
    assert (len(first), len(first[0]), len(first[0][0])) == (1, 8, 8)


def test_large_images_are_scored_in_several_requests_in_order(
    run_dag: Any, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from orchestration import holdout

    # 3 x 32 x 32 = 3,072 numbers per image: three images per request at this bound.
    monkeypatch.setattr(holdout, "MAX_VALUES_PER_REQUEST", 3 * 3072)
    world.version_quality["1"] = 0.9  # the stub errs on the first 10% of each request

    result = run_dag(DAG_ID, {"dataset_source": "shapes", "holdout_samples": 10})

    assert result.state == "success", result.task_states
    calls = world.calls("serving", "POST", "/v1/predict")
    assert [len(c["body"]["instances"]) for c in calls] == [3, 3, 3, 1]
    assert {c["body"]["version"] for c in calls} == {"1"}
    # Each request of 3 has no wrong answer at 10% (round(0.3) == 0), so all 10 are right:
    # predictions were joined in the order of the samples they belong to.
    assert result.xcom("run_inference")["accuracy"] == 1.0
    assert result.xcom("run_inference")["n_samples"] == 10


def test_an_option_the_source_does_not_take_fails_with_the_services_detail(
    run_dag: Any, world: World
) -> None:
    result = run_dag(DAG_ID, {"dataset_source": "digits", "image_size": 32})

    assert result.state == "failed"
    assert result.task_states["prepare_dataset"] == "failed"
    assert result.tries["prepare_dataset"] == 1  # a 422 is not retried
    [alert] = world.alerts
    assert "digits are 8x8 grayscale" in alert["error"]
