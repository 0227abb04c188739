"""
### model_management

Daily care of the registered model `image-classifier` (param `model_name`):

1. `list_model_versions`: every version with its tags, and the alias map, from MLflow.
2. `validate_staging_version`: the `staging` version must have `test_accuracy` > `min_accuracy`
   and be no worse than production by more than `max_regression`. A rejected candidate fails
   this task (and alerts); no candidate, or staging == production, is a no-op.
3. `promote_to_production`: moves the `production` alias to the staging version (MLflow REST).
4. `reload_serving_model`: asks the serving service to load the production version now.
5. `cleanup_old_versions`: deletes versions older than `retention_days` that carry no alias.
6. `monitor_serving_service`: reads the serving service's `/v1/model` and `/metrics`: version
   served vs the production alias, 5xx error rate and p99 latency (rates only once the service
   has seen `min_requests` requests); and `/v1/model`'s `live` section: the production
   version's live accuracy >= `min_live_accuracy` (once it has `min_feedback` outcomes) and the
   input drift score <= `max_input_drift`. A live check that cannot be judged is not applied.

7. `fail_run_if_a_check_failed`: runs only when a task above failed (`trigger_rule=one_failed`)
   and fails, so the run shows red even though cleanup and monitoring ran; otherwise skipped.

Alerts: every task's `on_failure_callback` is `PipelineAlertNotifier`, which logs the failure
and posts it as JSON to the `alert_webhook` connection when that connection exists, with a
`kind` (`quality_gate_failed`, `serving_unhealthy`, `live_accuracy_drop`, `input_drift`,
`task_failed`) and the numbers behind it in `details`.
Cleanup and monitoring run even when promotion did not (`trigger_rule=all_done`).
"""

from __future__ import annotations

import time
from typing import Any

from airflow.sdk import Param, TriggerRule, dag, get_current_context, task
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException
from orchestration import registry
from orchestration.alerts import PipelineAlertNotifier
from orchestration.findings import QUALITY_GATE_FAILED, CheckFailed, Finding
from orchestration.live_quality import describe, evaluate_live_quality
from orchestration.quality_gates import decide_promotion, versions_to_clean
from orchestration.service_http import SERVING_CONN_ID, call_service
from orchestration.serving_health import evaluate_serving_health, unhealthy_finding
from orchestration.task_defaults import default_task_args


def _params() -> dict[str, Any]:
    return dict(get_current_context()["params"])


def _version(registry_state: dict[str, Any], alias: str) -> dict[str, Any] | None:
    """The version an alias points to, from the listing (or MLflow if the listing lacks it)."""
    number = registry_state["aliases"].get(alias)
    if number is None:
        return None
    for version in registry_state["versions"]:
        if version["version"] == number:
            return version
    return registry.get_model_version(registry_state["model_name"], number)


@dag(
    dag_id="model_management",
    schedule="@daily",
    catchup=False,
    max_active_runs=1,
    tags=["mlops", "registry", "monitoring"],
    doc_md=__doc__,
    default_args=default_task_args(on_failure_callback=[PipelineAlertNotifier()]),
    params={
        "model_name": Param("image-classifier", type="string", minLength=1),
        "min_accuracy": Param(0.8, type="number", minimum=0, maximum=1),
        "max_regression": Param(0.02, type="number", minimum=0, maximum=1),
        "retention_days": Param(30, type="integer", minimum=1),
        "max_error_rate": Param(0.05, type="number", minimum=0, maximum=1),
        "max_p99_latency_seconds": Param(2.5, type="number", exclusiveMinimum=0),
        "min_requests": Param(100, type="integer", minimum=0),
        "min_live_accuracy": Param(0.8, type="number", minimum=0, maximum=1),
        "min_feedback": Param(20, type="integer", minimum=1),
        "max_input_drift": Param(0.5, type="number", exclusiveMinimum=0),
    },
)
def model_management() -> None:
    @task
    def list_model_versions() -> dict[str, Any]:
        """Versions (oldest first) and aliases of the registered model."""
        name = _params()["model_name"]
        state = {
            "model_name": name,
            "aliases": registry.get_aliases(name),
            "versions": registry.search_model_versions(name),
        }
        print(f"{name}: {len(state['versions'])} versions, aliases {state['aliases']}")
        return state

    @task
    def validate_staging_version(registry_state: dict[str, Any]) -> dict[str, Any]:
        """Quality gate on the staging version; raises when the candidate is not good enough."""
        params = _params()
        candidate = _version(registry_state, registry.STAGING_ALIAS)
        production = _version(registry_state, registry.PRODUCTION_ALIAS)
        decision = decide_promotion(
            candidate,
            production,
            min_accuracy=params["min_accuracy"],
            max_regression=params["max_regression"],
        )
        print(f"promotion decision: {decision}")
        if decision.rejected:
            details = {
                "version": decision.candidate,
                "accuracy": (candidate or {}).get("test_accuracy"),
                "min_accuracy": params["min_accuracy"],
                "production_version": decision.production,
                "production_accuracy": (production or {}).get("test_accuracy"),
                "max_regression": params["max_regression"],
            }
            finding = Finding(QUALITY_GATE_FAILED, "; ".join(decision.reasons), details)
            raise CheckFailed("staging version rejected", [finding])
        return decision.to_dict()

    @task
    def promote_to_production(decision: dict[str, Any]) -> dict[str, Any]:
        """Move the production alias to the approved version (no-op when nothing to promote)."""
        if not decision["promote"]:
            print(f"nothing to promote: {'; '.join(decision['reasons'])}")
            return {"promoted": False, "production": decision["production"]}
        name = _params()["model_name"]
        registry.set_alias(name, registry.PRODUCTION_ALIAS, decision["candidate"])
        print(f"{name}: production v{decision['production']} -> v{decision['candidate']}")
        return {
            "promoted": True,
            "production": decision["candidate"],
            "previous": decision["production"],
        }

    @task
    def reload_serving_model(promotion: dict[str, Any]) -> dict[str, Any]:
        """Have the serving service load the production version now, not at its next poll."""
        if promotion["production"] is None:
            raise AirflowSkipException("no production version yet: nothing to load")
        body = call_service(SERVING_CONN_ID, "POST", "/v1/model/reload", bearer=True)
        if str(body.get("version")) != str(promotion["production"]):
            # Retryable: serving may have read the registry just before the alias moved.
            raise RuntimeError(
                f"serving reloaded v{body.get('version')} but production is "
                f"v{promotion['production']}"
            )
        return body

    @task(trigger_rule=TriggerRule.ALL_DONE)
    def cleanup_old_versions(registry_state: dict[str, Any]) -> dict[str, Any]:
        """Delete versions older than retention_days that no alias points to."""
        params = _params()
        name = params["model_name"]
        aliases = registry.get_aliases(name)  # fresh: promotion may have just moved one
        stale = versions_to_clean(
            registry_state["versions"],
            aliases,
            now_ms=int(time.time() * 1000),
            retention_days=params["retention_days"],
        )
        for version in stale:
            registry.delete_model_version(name, version)
        print(f"{name}: deleted versions {stale or 'none'} (kept aliased {aliases})")
        return {"deleted": stale, "aliases": aliases}

    @task(trigger_rule=TriggerRule.ALL_DONE)
    def monitor_serving_service() -> dict[str, Any]:
        """Version served, 5xx rate, p99 latency, live accuracy and input drift within limits."""
        params = _params()
        expected = registry.get_aliases(params["model_name"]).get(registry.PRODUCTION_ALIAS)
        model_info = call_service(SERVING_CONN_ID, "GET", "/v1/model")
        health = evaluate_serving_health(
            model_info,
            call_service(SERVING_CONN_ID, "GET", "/metrics", raw=True),
            expected_version=expected,
            max_error_rate=params["max_error_rate"],
            max_p99_latency_seconds=params["max_p99_latency_seconds"],
            min_requests=params["min_requests"],
        )
        print(f"serving health: {health}")
        unhealthy = unhealthy_finding(
            health,
            max_error_rate=params["max_error_rate"],
            max_p99_latency_seconds=params["max_p99_latency_seconds"],
            min_requests=params["min_requests"],
        )
        live, live_findings = evaluate_live_quality(
            model_info,
            version=expected or health["served_version"],
            min_live_accuracy=params["min_live_accuracy"],
            min_feedback=params["min_feedback"],
            max_input_drift=params["max_input_drift"],
        )
        for line in describe(live):
            print(line)
        findings = ([unhealthy] if unhealthy else []) + live_findings
        if findings:
            raise CheckFailed("serving checks failed", findings)
        return {**health, "live": live}

    # The failed task has already alerted with its own error: this one only sets the run state.
    @task(trigger_rule=TriggerRule.ONE_FAILED, retries=0, on_failure_callback=[])
    def fail_run_if_a_check_failed() -> None:
        """Watcher: the run's leaves would otherwise be the all_done tasks, which succeed."""
        raise AirflowFailException("a check of this run failed; its alert has the details")

    registry_state = list_model_versions()
    decision = validate_staging_version(registry_state)
    promotion = promote_to_production(decision)
    reloaded = reload_serving_model(promotion)
    cleanup = cleanup_old_versions(registry_state)
    monitor = monitor_serving_service()
    reloaded >> cleanup >> monitor
    [
        registry_state,
        decision,
        promotion,
        reloaded,
        cleanup,
        monitor,
    ] >> fail_run_if_a_check_failed()


model_management()
