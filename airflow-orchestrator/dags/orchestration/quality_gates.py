"""Quality gates of the pipeline as plain functions: the DAG tasks call them, tests too.

Each gate returns its verdict with reasons a person can act on, and a failing gate returns the
``Finding`` its task raises in ``CheckFailed`` (the alert's ``kind`` and ``details``). None of
them does I/O: the tasks fetch what a gate judges and pass it in, aliases included.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from orchestration.findings import QUALITY_GATE_FAILED, Finding

# What each step of mlflow_orchestration_pipeline must hand over for the run to count as a
# pipeline that worked end to end (task id -> keys of its XCom).
PIPELINE_OUTPUTS = {
    "prepare_dataset": ["dataset_id", "sha256", "n_test"],
    "wait_for_training_job": ["job_id", "status", "model_version", "metrics"],
    "fetch_model_version": ["name", "version", "run_id"],
    "run_inference": ["version", "accuracy", "n_samples"],
}


def holdout_accuracy(predictions: Sequence[Any], labels: Sequence[Any]) -> float:
    """Share of predictions equal to their label (labels compared as strings)."""
    if len(predictions) != len(labels):
        raise ValueError(f"got {len(predictions)} predictions for {len(labels)} labels")
    if not labels:
        raise ValueError("no held-out samples to score")
    hits = sum(str(p) == str(y) for p, y in zip(predictions, labels, strict=True))
    return hits / len(labels)


def missing_outputs(outputs: Mapping[str, Any], required: Mapping[str, Sequence[str]]) -> list[str]:
    """Names ``step.key`` of every required output that is absent or empty."""
    missing = []
    for step, keys in required.items():
        value = outputs.get(step)
        if not isinstance(value, dict):
            missing.append(step)
            continue
        missing.extend(f"{step}.{key}" for key in keys if value.get(key) in (None, "", []))
    return missing


def pipeline_finding(
    dataset: dict[str, Any],
    job: dict[str, Any],
    model_version: dict[str, Any],
    inference: dict[str, Any],
    *,
    min_accuracy: float,
) -> Finding | None:
    """Gate of ``validate_pipeline``: every step handed over its outputs, the job, MLflow and
    serving agree on the version, and held-out accuracy >= ``min_accuracy``. None when it passes.
    """
    outputs = {
        "prepare_dataset": dataset,
        "wait_for_training_job": job,
        "fetch_model_version": model_version,
        "run_inference": inference,
    }
    failures = [f"missing output {name}" for name in missing_outputs(outputs, PIPELINE_OUTPUTS)]
    if str(job.get("model_version")) != model_version.get("version"):
        failures.append(
            f"job registered v{job.get('model_version')}, MLflow returned "
            f"v{model_version.get('version')}"
        )
    if inference.get("served_version") != inference.get("version"):
        failures.append(
            f"serving answered with v{inference.get('served_version')} "
            f"instead of v{inference.get('version')}"
        )
    accuracy = inference.get("accuracy")
    if accuracy is not None and accuracy < min_accuracy:
        failures.append(f"held-out accuracy {accuracy:.4f} < min_accuracy {min_accuracy}")
    if not failures:
        return None
    details = {
        "version": model_version.get("version"),
        "accuracy": accuracy,
        "min_accuracy": min_accuracy,
        "n_samples": inference.get("n_samples"),
    }
    return Finding(QUALITY_GATE_FAILED, "; ".join(failures), details)


def pipeline_summary(
    dataset: dict[str, Any],
    job: dict[str, Any],
    model_version: dict[str, Any],
    inference: dict[str, Any],
) -> dict[str, Any]:
    """What a run that passed ``pipeline_finding`` produced, for its XCom and log."""
    return {
        "dataset_id": dataset["dataset_id"],
        "job_id": job["job_id"],
        "model_version": model_version["version"],
        "train_test_accuracy": (job.get("metrics") or {}).get("test_accuracy"),
        "holdout_accuracy": inference.get("accuracy"),
    }


@dataclass
class PromotionDecision:
    """Outcome of ``decide_promotion``: promote or not, and why."""

    promote: bool
    candidate: str | None
    production: str | None
    reasons: list[str] = field(default_factory=list)
    rejected: bool = False  # True when a candidate exists but fails a gate

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def holdout_dataset_id(version: dict[str, Any]) -> str | None:
    """The snapshot a version was trained on: the training service's ``dataset_id`` tag."""
    return (version.get("tags") or {}).get("dataset_id") or None


def input_mismatch(candidate_data: dict[str, Any], production_data: dict[str, Any]) -> str | None:
    """Why production cannot be scored on the candidate's held-out data, or None when it can.

    Each argument is the dataset a version was trained on (``GET /v1/datasets/{id}``). A
    version trained on other classes or another image size or colour (the team moved from
    digits to its own photos) takes other inputs: there is nothing to compare it with.
    """
    differences = [
        f"{key} {production_data.get(key)} vs {candidate_data.get(key)}"
        for key in ("classes", "image_size", "channels")
        if production_data.get(key) != candidate_data.get(key)
    ]
    return "; ".join(differences) or None


def decide_promotion(
    candidate: dict[str, Any] | None,
    production: dict[str, Any] | None,
    *,
    min_accuracy: float,
    max_regression: float,
    staging_alias: str = "staging",
    production_alias: str = "production",
) -> PromotionDecision:
    """Promote the staging version when it beats ``min_accuracy`` and does not regress.

    ``candidate``/``production`` are the registry versions the two aliases point to, each with
    a ``holdout_accuracy``: both scored on the same held-out samples (the candidate's test
    split), so the comparison is fair; None when the candidate could not be scored. The alias
    names only word the reasons. No candidate, or a candidate that already serves, is a no-op.
    """
    prod_version = production["version"] if production else None
    if candidate is None:
        return PromotionDecision(
            False, None, prod_version, [f"no version carries the {staging_alias} alias"]
        )
    version = candidate["version"]
    if version == prod_version:
        return PromotionDecision(False, version, prod_version, [f"v{version} already serves"])
    staged = f"{staging_alias} v{version}"
    reasons = []
    accuracy = candidate.get("holdout_accuracy")
    if accuracy is None:
        reasons.append(
            f"{staged} was not scored on held-out data: it has no dataset_id tag "
            "(versions registered by the training service have one)"
        )
    elif not accuracy > min_accuracy:
        reasons.append(f"{staged} accuracy {accuracy:.4f} <= min_accuracy {min_accuracy}")
    prod_accuracy = production.get("holdout_accuracy") if production else None
    if (
        accuracy is not None
        and prod_accuracy is not None
        and accuracy < prod_accuracy - max_regression
    ):
        reasons.append(
            f"{staged} accuracy {accuracy:.4f} regresses more than "
            f"{max_regression} below {production_alias} v{prod_version} ({prod_accuracy:.4f})"
        )
    if reasons:
        return PromotionDecision(False, version, prod_version, reasons, rejected=True)
    passed = [f"{staged} passes all gates"]
    if production and production.get("not_comparable"):
        passed.append(
            f"{production_alias} v{prod_version} takes other inputs "
            f"({production['not_comparable']}): not compared"
        )
    return PromotionDecision(True, version, prod_version, passed)


def promotion_finding(
    decision: PromotionDecision,
    candidate: dict[str, Any] | None,
    production: dict[str, Any] | None,
    *,
    min_accuracy: float,
    max_regression: float,
) -> Finding | None:
    """The ``quality_gate_failed`` finding of a rejected candidate; None when not rejected."""
    if not decision.rejected:
        return None
    candidate = candidate or {}
    details = {
        "version": decision.candidate,
        "accuracy": candidate.get("holdout_accuracy"),
        "min_accuracy": min_accuracy,
        "production_version": decision.production,
        "production_accuracy": (production or {}).get("holdout_accuracy"),
        "max_regression": max_regression,
        "dataset_id": candidate.get("holdout_dataset_id"),
        "n_samples": candidate.get("holdout_samples"),
    }
    return Finding(QUALITY_GATE_FAILED, "; ".join(decision.reasons), details)


def versions_to_clean(
    versions: Sequence[dict[str, Any]],
    aliases: dict[str, str],
    *,
    now_ms: int,
    retention_days: int,
) -> list[str]:
    """Versions older than ``retention_days`` that no alias points to (oldest first)."""
    aliased = set(aliases.values())
    cutoff = now_ms - retention_days * 24 * 3600 * 1000
    return [
        v["version"]
        for v in versions
        if v["creation_timestamp"] < cutoff and v["version"] not in aliased and not v["aliases"]
    ]
