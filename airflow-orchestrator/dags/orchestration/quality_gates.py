"""Quality gates of the pipeline as plain functions: the DAG tasks call them, tests too.

Each gate returns or raises with a reason a person can act on; none of them does I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any


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


def decide_promotion(
    candidate: dict[str, Any] | None,
    production: dict[str, Any] | None,
    *,
    min_accuracy: float,
    max_regression: float,
) -> PromotionDecision:
    """Promote the staging version when it beats ``min_accuracy`` and does not regress.

    ``candidate``/``production`` are registry versions with a ``test_accuracy`` (None when the
    tag is missing). No candidate, or a candidate that already is production, is a no-op.
    """
    prod_version = production["version"] if production else None
    if candidate is None:
        return PromotionDecision(
            False, None, prod_version, ["no version carries the staging alias"]
        )
    version = candidate["version"]
    if version == prod_version:
        return PromotionDecision(False, version, prod_version, [f"v{version} already serves"])
    reasons = []
    accuracy = candidate.get("test_accuracy")
    if accuracy is None:
        reasons.append(f"staging v{version} has no test_accuracy tag")
    elif not accuracy > min_accuracy:
        reasons.append(f"staging v{version} accuracy {accuracy:.4f} <= min_accuracy {min_accuracy}")
    prod_accuracy = production.get("test_accuracy") if production else None
    if (
        accuracy is not None
        and prod_accuracy is not None
        and accuracy < prod_accuracy - max_regression
    ):
        reasons.append(
            f"staging v{version} accuracy {accuracy:.4f} regresses more than "
            f"{max_regression} below production v{prod_version} ({prod_accuracy:.4f})"
        )
    if reasons:
        return PromotionDecision(False, version, prod_version, reasons, rejected=True)
    return PromotionDecision(True, version, prod_version, [f"staging v{version} passes all gates"])


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
