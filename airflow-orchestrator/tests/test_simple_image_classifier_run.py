"""Behaviour: the newcomer's DAG trains, waits and prints three predictions."""

from __future__ import annotations

from typing import Any

from tests.stubs.world import World


def test_trains_then_predicts_three_images(run_dag: Any, world: World) -> None:
    result = run_dag("simple_image_classifier")

    assert result.state == "success", result.task_states
    rows = result.xcom("predict_sample_images")
    assert [row["image"] for row in rows] == [0, 1, 2]
    assert all(row["predicted"] == row["label"] for row in rows)
    [train_call] = world.calls("training", "POST", "/v1/train")
    assert train_call["body"]["dataset_id"] is None
    assert train_call["headers"]["idempotency-key"] == result.run_id
    [predict_call] = world.calls("serving", "POST", "/v1/predict")
    assert predict_call["body"]["version"] == "1"
