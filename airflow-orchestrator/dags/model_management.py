"""
### model_management

Every day at 00:00 UTC, and as soon as the pipeline has updated the asset
`image-classifier-staging` (a new staging version passed its checks), care of the registered
model `model_name` (default `image-classifier`): promote the version that carries
`staging_alias` (default `staging`, set by the training service) to `production_alias`
(default `production`, the alias the serving service loads) when it passes the quality gate,
have serving load it, clean up old versions and check serving's health.

1. `list_model_versions`: every version with its tags, and the alias map, from MLflow.
2. `score_on_staging_holdout`: `holdout_samples` held-out images of the dataset the staging
   version was trained on (its `dataset_id` tag; training service), predicted through serving
   by the staging and by the production version: two accuracies on the same data. A
   production version trained on other classes or another image size or colour (its own
   dataset says so) cannot take those images: it is not scored, and not compared.
3. `validate_staging_version`: staging's held-out accuracy must be > `min_accuracy` and no
   worse than production's by more than `max_regression`. A rejected candidate fails this
   task (and alerts); no candidate, or staging == production, is a no-op.
4. `promote_to_production`: moves the production alias to the staging version (MLflow REST).
5. `reload_serving_model`: asks the serving service to load the production version now.
6. `cleanup_old_versions`: deletes versions older than `retention_days` that carry no alias.
7. `monitor_serving_service`: reads the serving service's `/v1/model` and `/metrics`: version
   served vs the production alias, 5xx error rate and p99 latency (rates only once the service
   has seen `min_requests` requests); and `/v1/model`'s `live` section: the production
   version's live accuracy >= `min_live_accuracy` (once it has `min_feedback` outcomes) and the
   input drift score <= `max_input_drift` (once it covers `min_drift_inputs` instances). A live
   check that cannot be judged is not applied.
8. `fail_run_if_a_check_failed`: runs only when a task above failed (`trigger_rule=one_failed`)
   and fails, so the run shows red even though cleanup and monitoring ran; otherwise skipped.

Cleanup and monitoring run even when promotion did not (`trigger_rule=all_done`).
Alerts: every task's `on_failure_callback` is `PipelineAlertNotifier`, which logs the failure
and posts it as JSON to the `alert_webhook` connection when that connection exists, with a
`kind` (`quality_gate_failed`, `serving_unhealthy`, `live_accuracy_drop`, `input_drift`,
`task_failed`) and the numbers behind it in `details`; retries post `task_retry`, a successful
run `run_succeeded`.

Connections: `mlflow`, `training_service` (held-out samples), `serving_service`.
"""

from __future__ import annotations

import time
from typing import Any

from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable, Param, TriggerRule, dag, task
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException
from orchestration import datasets, holdout, registry
from orchestration.alerts import RunSucceededNotifier, task_alert_callbacks
from orchestration.assets import STAGING_MODEL
from orchestration.findings import CheckFailed
from orchestration.live_quality import describe, evaluate_live_quality
from orchestration.quality_gates import (
    decide_promotion,
    holdout_dataset_id,
    input_mismatch,
    promotion_finding,
    versions_to_clean,
)
from orchestration.service_http import SERVING_CONN_ID, call_service
from orchestration.serving_health import evaluate_serving_health, unhealthy_finding
from orchestration.task_defaults import default_task_args


@dag(
    dag_id="model_management",
    # Daily, and whenever the pipeline has a new staging version (its asset event).
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable("@daily", timezone="UTC"), assets=[STAGING_MODEL]
    ),
    catchup=False,
    max_active_runs=1,
    tags=["mlops", "registry", "monitoring"],
    doc_md=__doc__,
    default_args=default_task_args(**task_alert_callbacks()),
    on_success_callback=[RunSucceededNotifier()],
    # Schemas and defaults of the run params. The function's arguments repeat the defaults
    # (Airflow requires them) and pass each param to the tasks, resolved per run.
    params={
        "model_name": Param("image-classifier", type="string", minLength=1),
        "staging_alias": Param("staging", type="string", minLength=1),
        "production_alias": Param("production", type="string", minLength=1),
        "min_accuracy": Param(0.8, type="number", minimum=0, maximum=1),
        "max_regression": Param(0.02, type="number", minimum=0, maximum=1),
        "holdout_samples": Param(200, type="integer", minimum=1, maximum=1024),
        "retention_days": Param(30, type="integer", minimum=1),
        "max_error_rate": Param(0.05, type="number", minimum=0, maximum=1),
        "max_p99_latency_seconds": Param(2.5, type="number", exclusiveMinimum=0),
        "min_requests": Param(100, type="integer", minimum=0),
        "min_live_accuracy": Param(0.8, type="number", minimum=0, maximum=1),
        "min_feedback": Param(20, type="integer", minimum=1),
        "max_input_drift": Param(0.5, type="number", exclusiveMinimum=0),
        "min_drift_inputs": Param(50, type="integer", minimum=1),
    },
)
def model_management(
    # The same defaults as the serving service's MODEL_NAME and MODEL_ALIAS settings.
    model_name: str = "image-classifier",
    staging_alias: str = "staging",
    production_alias: str = "production",
    min_accuracy: float = 0.8,
    max_regression: float = 0.02,
    holdout_samples: int = 200,
    retention_days: int = 30,
    max_error_rate: float = 0.05,
    max_p99_latency_seconds: float = 2.5,
    min_requests: int = 100,
    min_live_accuracy: float = 0.8,
    min_feedback: int = 20,
    max_input_drift: float = 0.5,
    min_drift_inputs: int = 50,
) -> None:
    @task
    def list_model_versions(model_name: str) -> dict[str, Any]:
        """Versions (oldest first) and aliases of the registered model."""
        listing = registry.list_model(model_name)
        print(f"{model_name}: {len(listing['versions'])} versions, aliases {listing['aliases']}")
        return listing

    @task
    def score_on_staging_holdout(
        listing: dict[str, Any], staging_alias: str, production_alias: str, limit: int
    ) -> dict[str, Any]:
        """Staging and production, each with its accuracy on staging's held-out samples."""
        candidate = registry.aliased_version(listing, staging_alias)
        production = registry.aliased_version(listing, production_alias)
        dataset_id = holdout_dataset_id(candidate) if candidate else None
        if candidate is None or dataset_id is None or candidate == production:
            return {"candidate": candidate, "production": production}  # the gate says why
        samples = holdout.fetch_holdout_samples(dataset_id, limit)
        held_out = {"holdout_dataset_id": dataset_id, "holdout_samples": len(samples["labels"])}

        def scored(version: dict[str, Any]) -> dict[str, Any]:
            accuracy = holdout.score_version(version["version"], samples)
            return {**version, **held_out, "holdout_accuracy": accuracy}

        def production_scored(version: dict[str, Any]) -> dict[str, Any]:
            other = holdout_dataset_id(version)
            if other and other != dataset_id:
                mismatch = input_mismatch(datasets.describe(dataset_id), datasets.describe(other))
                if mismatch:
                    print(f"production v{version['version']} takes other inputs: {mismatch}")
                    return {**version, "holdout_accuracy": None, "not_comparable": mismatch}
            return scored(version)

        return {
            "candidate": scored(candidate),
            "production": production_scored(production) if production else None,
        }

    @task
    def validate_staging_version(
        scored: dict[str, Any],
        staging_alias: str,
        production_alias: str,
        min_accuracy: float,
        max_regression: float,
    ) -> dict[str, Any]:
        """Quality gate on the staging version; raises when the candidate is not good enough."""
        candidate, production = scored["candidate"], scored["production"]
        limits = {"min_accuracy": min_accuracy, "max_regression": max_regression}
        decision = decide_promotion(
            candidate,
            production,
            staging_alias=staging_alias,
            production_alias=production_alias,
            **limits,
        )
        print(f"promotion decision: {decision}")
        if finding := promotion_finding(decision, candidate, production, **limits):
            raise CheckFailed("staging version rejected", [finding])
        return decision.to_dict()

    @task
    def promote_to_production(
        decision: dict[str, Any], model_name: str, production_alias: str
    ) -> dict[str, Any]:
        """Move the production alias to the approved version (no-op when nothing to promote)."""
        if not decision["promote"]:
            print(f"nothing to promote: {'; '.join(decision['reasons'])}")
            return {"promoted": False, "production": decision["production"]}
        registry.set_alias(model_name, production_alias, decision["candidate"])
        print(
            f"{model_name}: {production_alias} v{decision['production']} "
            f"-> v{decision['candidate']}"
        )
        return {
            "promoted": True,
            "production": decision["candidate"],
            "previous": decision["production"],
        }

    @task
    def reload_serving_model(promotion: dict[str, Any], production_alias: str) -> dict[str, Any]:
        """Have the serving service load the production version now, not at its next poll."""
        if promotion["production"] is None:
            raise AirflowSkipException(f"no {production_alias} version yet: nothing to load")
        body = call_service(SERVING_CONN_ID, "POST", "/v1/model/reload", bearer=True)
        if str(body.get("version")) != str(promotion["production"]):
            # Retryable: serving may have read the registry just before the alias moved.
            raise RuntimeError(
                f"serving reloaded v{body.get('version')} but {production_alias} is "
                f"v{promotion['production']}"
            )
        return body

    @task(trigger_rule=TriggerRule.ALL_DONE)
    def cleanup_old_versions(listing: dict[str, Any], retention_days: int) -> dict[str, Any]:
        """Delete versions older than retention_days that no alias points to."""
        name = listing["model_name"]
        aliases = registry.get_aliases(name)  # fresh: promotion may have just moved one
        stale = versions_to_clean(
            listing["versions"],
            aliases,
            now_ms=int(time.time() * 1000),
            retention_days=retention_days,
        )
        for version in stale:
            registry.delete_model_version(name, version)
        print(f"{name}: deleted versions {stale or 'none'} (kept aliased {aliases})")
        return {"deleted": stale, "aliases": aliases}

    @task(trigger_rule=TriggerRule.ALL_DONE)
    def monitor_serving_service(
        model_name: str,
        production_alias: str,
        health_limits: dict[str, Any],
        live_limits: dict[str, Any],
    ) -> dict[str, Any]:
        """Version served, 5xx rate, p99 latency, live accuracy and input drift within limits."""
        expected = registry.get_aliases(model_name).get(production_alias)
        model_info = call_service(SERVING_CONN_ID, "GET", "/v1/model")
        health = evaluate_serving_health(
            model_info,
            call_service(SERVING_CONN_ID, "GET", "/metrics", raw=True),
            expected_version=expected,
            alias=production_alias,
            **health_limits,
        )
        print(f"serving health: {health}")
        unhealthy = unhealthy_finding(health, **health_limits)
        live, live_findings = evaluate_live_quality(
            model_info,
            version=expected or health["served_version"],
            alias=production_alias,
            **live_limits,
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

    listing = list_model_versions(model_name)
    scored = score_on_staging_holdout(listing, staging_alias, production_alias, holdout_samples)
    decision = validate_staging_version(
        scored, staging_alias, production_alias, min_accuracy, max_regression
    )
    promotion = promote_to_production(decision, model_name, production_alias)
    reloaded = reload_serving_model(promotion, production_alias)
    cleanup = cleanup_old_versions(listing, retention_days)
    monitor = monitor_serving_service(
        model_name,
        production_alias,
        health_limits={
            "max_error_rate": max_error_rate,
            "max_p99_latency_seconds": max_p99_latency_seconds,
            "min_requests": min_requests,
        },
        live_limits={
            "min_live_accuracy": min_live_accuracy,
            "min_feedback": min_feedback,
            "max_input_drift": max_input_drift,
            "min_drift_inputs": min_drift_inputs,
        },
    )
    # Housekeeping and monitoring come after promotion, whatever its outcome (all_done).
    reloaded >> cleanup >> monitor
    checked = [listing, scored, decision, promotion, reloaded, cleanup, monitor]
    checked >> fail_run_if_a_check_failed()


model_management()
