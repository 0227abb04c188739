"""Behaviour: model_management's promotion gate (staging vs production) against the stubs.

Serving scores each version on held-out data as the stubs' ``version_quality`` says; with
``register_scored_version`` that is the version's ``test_accuracy`` tag.
"""

from __future__ import annotations

from typing import Any

from tests.stubs.world import World

DAG_ID = "model_management"


def test_regression_beyond_max_regression_is_refused(run_dag: Any, world: World) -> None:
    production = world.register_scored_version(0.97, aliases=("production",))
    world.register_scored_version(0.90, aliases=("staging",))
    world.serving_version = production

    result = run_dag(DAG_ID, {"max_regression": 0.05})

    assert result.task_states["validate_staging_version"] == "failed"
    assert world.aliases["production"] == production
    assert "regresses more than 0.05" in world.alerts[0]["error"]


def test_the_gate_compares_both_versions_on_the_candidates_held_out_data(
    run_dag: Any, world: World
) -> None:
    # The tags were measured on different test sets: staging's looks better than production's.
    production = world.register_version(0.90, aliases=("production",))
    candidate = world.register_version(0.97, aliases=("staging",))
    # On the same held-out samples (staging's test split), staging regresses by 0.06.
    world.version_quality.update({production: 0.96, candidate: 0.90})
    world.serving_version = production

    result = run_dag(DAG_ID, {"holdout_samples": 50})

    assert result.task_states["validate_staging_version"] == "failed"
    assert world.aliases["production"] == production
    [samples] = [r for r in world.requests if r["path"].endswith("/samples")]
    assert samples["path"] == f"/v1/datasets/ds{candidate}/samples"
    assert samples["query"] == {"split": "test", "limit": "50"}
    predictions = world.calls("serving", "POST", "/v1/predict")
    assert [p["body"]["version"] for p in predictions] == [candidate, production]
    assert predictions[0]["body"]["instances"] == predictions[1]["body"]["instances"]
    [alert] = world.alerts
    assert alert["error"] == (
        f"staging version rejected: staging v{candidate} accuracy 0.9000 regresses more than "
        f"0.02 below production v{production} (0.9600)"
    )
    assert alert["details"]["accuracy"] == 0.9
    assert alert["details"]["production_accuracy"] == 0.96


def test_a_candidate_whose_tag_looks_worse_is_promoted_when_it_is_not_on_the_same_data(
    run_dag: Any, world: World
) -> None:
    production = world.register_version(0.97, aliases=("production",))
    candidate = world.register_version(0.85, aliases=("staging",))  # a harder test set
    world.version_quality.update({production: 0.92, candidate: 0.93})
    world.serving_version = production

    result = run_dag(DAG_ID)

    assert result.state == "success", result.task_states
    assert world.aliases["production"] == candidate
    scored = result.xcom("score_on_staging_holdout")
    assert scored["candidate"]["holdout_accuracy"] == 0.93
    assert scored["production"]["holdout_accuracy"] == 0.92


def test_staging_already_in_production_is_a_no_op(run_dag: Any, world: World) -> None:
    version = world.register_scored_version(0.95, aliases=("staging", "production"))
    world.serving_version = version

    result = run_dag(DAG_ID)

    assert result.state == "success", result.task_states
    assert result.xcom("promote_to_production") == {"promoted": False, "production": version}
    assert world.calls("mlflow", "POST", "/api/2.0/mlflow/registered-models/alias") == []
