"""Live quality of the production model, read from the ``live`` section of serving's ``/v1/model``.

The serving service keeps, per model version, how many predictions got feedback and how many of
those were right (``live.accuracy``), and how far the recent inputs are from the training
inputs (``live.drift.score``, 0 = same distribution; in-distribution traffic scores ~0.05,
inverted images > 1). Two checks are built on them:

* live accuracy of the production version >= ``min_live_accuracy``, judged only once that
  version has ``min_feedback`` outcomes (a handful of answers says nothing);
* input drift score <= ``max_input_drift``, judged only once the score covers
  ``min_drift_inputs`` instances (one odd image is not a shifted distribution).

A check that cannot be judged (an older serving service without ``live``, no feedback yet, no
reference statistics) is not applied, and the summary says why: it neither passes nor fails.
"""

from __future__ import annotations

from typing import Any

from orchestration.findings import INPUT_DRIFT, LIVE_ACCURACY_DROP, Finding


def _accuracy_check(
    live: dict[str, Any],
    version: str | None,
    *,
    alias: str,
    min_live_accuracy: float,
    min_feedback: int,
) -> tuple[dict[str, Any], Finding | None]:
    summary: dict[str, Any] = {"version": version, "threshold": min_live_accuracy}
    if version is None:
        return {**summary, "applied": False, "note": f"no {alias} version"}, None
    entry = (live.get("accuracy") or {}).get(str(version))
    if not entry:
        note = f"no feedback recorded for v{version} yet"
        return {**summary, "applied": False, "note": note}, None
    feedback, accuracy = int(entry.get("feedback") or 0), entry.get("accuracy")
    summary.update(feedback=feedback, correct=entry.get("correct"), accuracy=accuracy)
    if feedback < min_feedback:
        note = f"v{version} has {feedback} of min_feedback {min_feedback} outcomes"
        return {**summary, "applied": False, "note": note}, None
    if accuracy is None:
        return {**summary, "applied": False, "note": f"live accuracy of v{version} is null"}, None
    summary["applied"] = True
    if accuracy >= min_live_accuracy:
        return summary, None
    finding = Finding(
        LIVE_ACCURACY_DROP,
        f"live accuracy of v{version} {accuracy:.4f} over {feedback} outcomes "
        f"< min_live_accuracy {min_live_accuracy}",
        {
            "version": str(version),
            "accuracy": accuracy,
            "threshold": min_live_accuracy,
            "feedback": feedback,
            "correct": entry.get("correct"),
            "min_feedback": min_feedback,
            "window": live.get("window"),
        },
    )
    return summary, finding


def _drift_check(
    live: dict[str, Any], *, max_input_drift: float, min_drift_inputs: int
) -> tuple[dict[str, Any], Finding | None]:
    drift = live.get("drift")
    summary: dict[str, Any] = {"threshold": max_input_drift}
    if not drift:
        return {**summary, "applied": False, "note": "serving reports no drift statistics"}, None
    score, version = drift.get("score"), drift.get("version")
    summary.update(
        version=version,
        score=score,
        instances=drift.get("instances"),
        reference=drift.get("reference"),
    )
    if score is None:
        if drift.get("reference") is False:
            note = f"v{version} has no reference input statistics"
        elif not drift.get("instances"):
            note = f"no instances seen by v{version} yet"
        else:
            note = "drift score is null"
        return {**summary, "applied": False, "note": note}, None
    instances = int(drift.get("instances") or 0)
    if instances < min_drift_inputs:
        note = f"v{version} has {instances} of min_drift_inputs {min_drift_inputs} instances"
        return {**summary, "applied": False, "note": note}, None
    summary["applied"] = True
    if score <= max_input_drift:
        return summary, None
    finding = Finding(
        INPUT_DRIFT,
        f"input drift score {score:.3f} of v{version} over {drift.get('instances')} instances "
        f"> max_input_drift {max_input_drift}",
        {
            "version": version,
            "score": score,
            "threshold": max_input_drift,
            "instances": drift.get("instances"),
            "min_drift_inputs": min_drift_inputs,
            "window": live.get("window"),
        },
    )
    return summary, finding


def evaluate_live_quality(
    model_info: dict[str, Any],
    *,
    version: str | None,
    alias: str = "production",
    min_live_accuracy: float,
    min_feedback: int,
    max_input_drift: float,
    min_drift_inputs: int,
) -> tuple[dict[str, Any], list[Finding]]:
    """Both live checks for ``version``, the one ``alias`` points to: a summary and findings."""
    live = model_info.get("live")
    if not isinstance(live, dict):
        note = "serving reports no live section (an older serving service)"
        skipped = {"applied": False, "note": note}
        return {"window": None, "accuracy": skipped, "drift": skipped}, []
    accuracy, accuracy_finding = _accuracy_check(
        live,
        version,
        alias=alias,
        min_live_accuracy=min_live_accuracy,
        min_feedback=min_feedback,
    )
    drift, drift_finding = _drift_check(
        live, max_input_drift=max_input_drift, min_drift_inputs=min_drift_inputs
    )
    findings = [f for f in (accuracy_finding, drift_finding) if f is not None]
    return {"window": live.get("window"), "accuracy": accuracy, "drift": drift}, findings


def describe(summary: dict[str, Any]) -> list[str]:
    """One line per live check for the task log: applied (with its numbers) or why not."""
    lines = []
    for name in ("accuracy", "drift"):
        check = summary[name]
        if check["applied"]:
            numbers = {k: v for k, v in check.items() if k not in ("applied", "note")}
            lines.append(f"live {name} check applied: {numbers}")
        else:
            lines.append(f"live {name} check not applied: {check['note']}")
    return lines
