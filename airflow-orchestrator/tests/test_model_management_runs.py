"""Behaviour: model_management promotes, refuses, cleans up and monitors against the stubs.

The promotion gate's own cases are in ``test_promotion_gate_runs.py``.
"""

from __future__ import annotations

from typing import Any

from tests.notices import run_succeeded
from tests.stubs.training_app import SHAPES
from tests.stubs.world import World, dataset_record

DAG_ID = "model_management"


def _serve(world: World, version: str) -> None:
    world.serving_version = version


def test_better_staging_version_is_promoted_served_and_old_versions_cleaned(
    run_dag: Any, world: World
) -> None:
    stale = world.register_scored_version(0.90, age_days=45)  # v1: old, no alias -> deleted
    kept_old = world.register_scored_version(0.91, age_days=40, aliases=("archive",))  # v2: aliased
    recent = world.register_scored_version(0.92, age_days=3)  # v3: too young to delete
    production = world.register_scored_version(0.93, age_days=2, aliases=("production",))  # v4
    staging = world.register_scored_version(0.95, aliases=("staging",))  # v5
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
    # The new version has no feedback and no traffic yet: neither live check can judge it.
    assert health["live"]["accuracy"]["applied"] is False
    assert health["live"]["accuracy"]["note"] == f"no feedback recorded for v{staging} yet"
    assert health["live"]["drift"] == {
        "threshold": 0.5,
        "version": staging,
        "score": None,
        "instances": 0,
        "reference": True,
        "applied": False,
        "note": f"no instances seen by v{staging} yet",
    }
    assert world.alerts == []
    assert world.notices == [run_succeeded(DAG_ID, result.run_id)]  # on_success_callback


def test_candidate_below_threshold_is_not_promoted_and_alerts(run_dag: Any, world: World) -> None:
    production = world.register_scored_version(0.93, aliases=("production",))
    candidate = world.register_scored_version(0.75, aliases=("staging",))
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
    assert world.alerts == [
        {
            "source": "airflow-orchestrator",
            "severity": "error",
            "kind": "quality_gate_failed",
            "dag_id": DAG_ID,
            "run_id": result.run_id,
            "task_id": "validate_staging_version",
            "try_number": 1,
            "error": (
                f"staging version rejected: staging v{candidate} accuracy 0.7500 "
                f"<= min_accuracy 0.8; staging v{candidate} accuracy 0.7500 regresses more "
                f"than 0.02 below production v{production} (0.9300)"
            ),
            "details": {
                "version": candidate,
                "accuracy": 0.75,
                "min_accuracy": 0.8,
                "production_version": production,
                "production_accuracy": 0.93,
                "max_regression": 0.02,
                "dataset_id": f"ds{candidate}",
                "n_samples": 200,
            },
        }
    ]
    assert world.alert_request_ids == [f"{DAG_ID}/{result.run_id}"]


def test_monitor_alerts_on_error_rate_and_wrong_served_version(run_dag: Any, world: World) -> None:
    version = world.register_scored_version(0.95, aliases=("staging", "production"))
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
    kinds = {alert["task_id"]: (alert["kind"], alert["details"]) for alert in world.alerts}
    assert kinds["reload_serving_model"] == ("task_failed", {"exception_type": "AirflowException"})
    assert kinds["monitor_serving_service"] == (
        "serving_unhealthy",
        {
            "served_version": "0",
            "expected_version": version,
            "requests": 100,
            "errors_5xx": 30,
            "error_rate": 0.3,
            "p99_latency_seconds": 0.01,
            "max_error_rate": 0.05,
            "max_p99_latency_seconds": 2.5,
            "min_requests": 100,
        },
    )


def test_live_accuracy_below_threshold_alerts_with_the_numbers(run_dag: Any, world: World) -> None:
    version = world.register_scored_version(0.95, aliases=("staging", "production"))
    _serve(world, version)
    world.set_live_accuracy(version, feedback=40, correct=28)  # 0.70 over enough outcomes
    world.set_live_accuracy("0", feedback=100, correct=10)  # another version: not judged
    world.set_input_drift(0.05)  # in-distribution traffic

    result = run_dag(DAG_ID, {"min_live_accuracy": 0.75, "min_feedback": 40})

    assert result.state == "failed"
    assert result.task_states["monitor_serving_service"] == "failed"
    assert world.alerts == [
        {
            "source": "airflow-orchestrator",
            "severity": "error",
            "kind": "live_accuracy_drop",
            "dag_id": DAG_ID,
            "run_id": result.run_id,
            "task_id": "monitor_serving_service",
            "try_number": 1,
            "error": (
                f"serving checks failed: live accuracy of v{version} 0.7000 over 40 outcomes "
                "< min_live_accuracy 0.75"
            ),
            "details": {
                "version": version,
                "accuracy": 0.7,
                "threshold": 0.75,
                "feedback": 40,
                "correct": 28,
                "min_feedback": 40,
                "window": 1000,
            },
        }
    ]


def test_input_drift_alerts_while_too_few_outcomes_leave_accuracy_unjudged(
    run_dag: Any, world: World
) -> None:
    version = world.register_scored_version(0.95, aliases=("staging", "production"))
    _serve(world, version)
    world.set_live_accuracy(version, feedback=19, correct=0)  # below the default min_feedback 20
    world.set_input_drift(1.4, instances=300)  # e.g. inverted images

    result = run_dag(DAG_ID)

    assert result.task_states["monitor_serving_service"] == "failed"
    [alert] = world.alerts
    assert (alert["kind"], alert["task_id"]) == ("input_drift", "monitor_serving_service")
    assert alert["details"] == {
        "version": version,
        "score": 1.4,
        "threshold": 0.5,
        "instances": 300,
        "min_drift_inputs": 50,
        "window": 1000,
    }
    assert alert["error"] == (
        f"serving checks failed: input drift score 1.400 of v{version} over 300 instances "
        "> max_input_drift 0.5"
    )


def test_a_single_odd_input_does_not_fire_the_drift_gate(run_dag: Any, world: World) -> None:
    version = world.register_scored_version(0.95, aliases=("staging", "production"))
    _serve(world, version)
    world.set_input_drift(4.2, instances=1)  # one inverted image, the only input so far

    result = run_dag(DAG_ID, conf={"min_drift_inputs": 2})

    assert result.state == "success", result.task_states
    drift = result.xcom("monitor_serving_service")["live"]["drift"]
    assert drift["applied"] is False
    assert drift["note"] == f"v{version} has 1 of min_drift_inputs 2 instances"
    assert world.alerts == []


def test_live_checks_that_cannot_judge_are_not_applied_and_the_run_passes(
    run_dag: Any, world: World
) -> None:
    version = world.register_scored_version(0.95, aliases=("staging", "production"))
    _serve(world, version)
    world.set_live_accuracy(version, feedback=19, correct=0)  # too few outcomes
    world.drift_reference = False  # a version logged without input statistics: score null
    world.set_input_drift(None, instances=300)

    result = run_dag(DAG_ID)

    assert result.state == "success", result.task_states
    live = result.xcom("monitor_serving_service")["live"]
    assert live["accuracy"]["applied"] is False and live["drift"]["applied"] is False
    assert live["accuracy"]["note"] == f"v{version} has 19 of min_feedback 20 outcomes"
    assert live["drift"]["note"] == f"v{version} has no reference input statistics"
    assert world.alerts == []


def test_model_name_and_aliases_are_params_threaded_through_every_call(
    run_dag: Any, world: World
) -> None:
    # A registry and a serving service set up with MODEL_NAME=digits, MODEL_ALIAS=live.
    world.model_name, world.serving_alias = "digits", "live"
    production = world.register_scored_version(0.93, aliases=("live",))
    candidate = world.register_scored_version(0.95, aliases=("candidate",))
    _serve(world, production)

    result = run_dag(
        DAG_ID, {"model_name": "digits", "staging_alias": "candidate", "production_alias": "live"}
    )

    assert result.state == "success", result.task_states
    assert world.aliases == {"live": candidate, "candidate": candidate}
    [promotion] = world.calls("mlflow", "POST", "/api/2.0/mlflow/registered-models/alias")
    assert promotion["body"] == {"name": "digits", "alias": "live", "version": candidate}
    assert world.serving_version == candidate
    assert result.xcom("monitor_serving_service")["expected_version"] == candidate
    registry_calls = [r for r in world.requests if r["service"] == "mlflow"]
    searches = {r["query"]["filter"] for r in registry_calls if r["path"].endswith("/search")}
    named = {
        r["query"].get("name") or (r["body"] or {}).get("name")
        for r in registry_calls
        if not r["path"].endswith("/search")
    }
    assert (searches, named) == ({"name='digits'"}, {"digits"})


def test_a_candidate_on_other_inputs_is_promoted_without_scoring_production_on_them(
    run_dag: Any, world: World
) -> None:
    # Production learnt 8x8 digits; the team's new staging version learnt 32x32 RGB shapes.
    production = world.register_scored_version(0.99, aliases=("production",))
    world.datasets["shapes1"] = dataset_record("shapes1", "archive", SHAPES, 32, 3)
    staging = world.register_scored_version(
        0.93, aliases=("staging",), dataset_id="shapes1", classes=SHAPES
    )
    _serve(world, production)

    result = run_dag(DAG_ID)

    assert result.state == "success", result.task_states
    assert world.aliases["production"] == staging
    scored = result.xcom("score_on_staging_holdout")
    assert scored["candidate"]["holdout_accuracy"] == 0.93
    assert scored["production"]["holdout_accuracy"] is None
    assert "image_size 8 vs 32" in scored["production"]["not_comparable"]
    # Serving was never asked to score shapes with the digits model (it would answer 422).
    predicted = {c["body"]["version"] for c in world.calls("serving", "POST", "/v1/predict")}
    assert predicted == {staging}
    decision = result.xcom("validate_staging_version")
    assert any("takes other inputs" in reason for reason in decision["reasons"]), decision
