"""Behaviour: model_management promotes, refuses, cleans up and monitors against the stubs."""

from __future__ import annotations

from typing import Any

from tests.stubs.world import World

DAG_ID = "model_management"


def _serve(world: World, version: str) -> None:
    world.serving_version = version


def test_better_staging_version_is_promoted_served_and_old_versions_cleaned(
    run_dag: Any, world: World
) -> None:
    stale = world.register_version(0.90, age_days=45)  # v1: old, no alias -> deleted
    kept_old = world.register_version(0.91, age_days=40, aliases=("archive",))  # v2: aliased
    recent = world.register_version(0.92, age_days=3)  # v3: too young to delete
    production = world.register_version(0.93, age_days=2, aliases=("production",))  # v4
    staging = world.register_version(0.95, aliases=("staging",))  # v5
    _serve(world, production)

    result = run_dag(DAG_ID)

    assert result.state == "success", result.task_states
    assert world.aliases["production"] == staging
    assert world.serving_version == staging  # serving was asked to reload
    assert result.xcom("reload_serving_model")["swapped"] is True
    assert stale not in world.versions
    assert {kept_old, recent, production, staging} <= set(world.versions)
    assert result.xcom("cleanup_old_versions")["deleted"] == [stale]
    health = result.xcom("monitor_serving_service")
    assert health["served_version"] == staging
    assert health["rate_checks_applied"] is False  # a fresh service with no traffic passes
    assert world.alerts == []


def test_candidate_below_threshold_is_not_promoted_and_alerts(run_dag: Any, world: World) -> None:
    production = world.register_version(0.93, aliases=("production",))
    world.register_version(0.75, aliases=("staging",))
    _serve(world, production)

    result = run_dag(DAG_ID)

    assert result.state == "failed"
    assert result.task_states["validate_staging_version"] == "failed"
    assert result.task_states["promote_to_production"] == "upstream_failed"
    assert world.aliases["production"] == production
    assert world.calls("mlflow", "POST", "/api/2.0/mlflow/registered-models/alias") == []
    # Housekeeping and monitoring still ran.
    assert result.task_states["cleanup_old_versions"] == "success"
    assert result.task_states["monitor_serving_service"] == "success"
    [alert] = world.alerts
    assert alert["dag_id"] == DAG_ID and alert["task_id"] == "validate_staging_version"
    assert "accuracy 0.7500 <= min_accuracy 0.8" in alert["error"]


def test_regression_beyond_max_regression_is_refused(run_dag: Any, world: World) -> None:
    production = world.register_version(0.97, aliases=("production",))
    world.register_version(0.90, aliases=("staging",))
    _serve(world, production)

    result = run_dag(DAG_ID, {"max_regression": 0.05})

    assert result.task_states["validate_staging_version"] == "failed"
    assert world.aliases["production"] == production
    assert "regresses more than 0.05" in world.alerts[0]["error"]


def test_staging_already_in_production_is_a_no_op(run_dag: Any, world: World) -> None:
    version = world.register_version(0.95, aliases=("staging", "production"))
    _serve(world, version)

    result = run_dag(DAG_ID)

    assert result.state == "success", result.task_states
    assert result.xcom("promote_to_production") == {"promoted": False, "production": version}
    assert world.calls("mlflow", "POST", "/api/2.0/mlflow/registered-models/alias") == []


def test_monitor_alerts_on_error_rate_and_wrong_served_version(run_dag: Any, world: World) -> None:
    version = world.register_version(0.95, aliases=("staging", "production"))
    world.serving_version = "0"  # serving stuck on something else; reload will fix it...
    world.faults["POST /v1/model/reload"] = 100  # ...except reload keeps failing
    world.serving_traffic += [("POST", "/v1/predict", 500, 0.01)] * 30
    world.serving_traffic += [("POST", "/v1/predict", 200, 0.01)] * 70

    result = run_dag(DAG_ID)

    assert result.state == "failed"
    assert result.task_states["reload_serving_model"] == "failed"
    assert result.task_states["monitor_serving_service"] == "failed"
    errors = {alert["task_id"]: alert["error"] for alert in world.alerts}
    assert "HTTP 503: stub fault" in errors["reload_serving_model"]
    assert (
        f"serving answers with v0, production alias is v{version}"
        in errors["monitor_serving_service"]
    )
    assert "error rate 30.00% over 100 requests" in errors["monitor_serving_service"]
