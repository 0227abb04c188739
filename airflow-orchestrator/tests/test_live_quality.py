"""Live checks on serving's ``live`` section: when they apply, when they fail, and why not."""

from __future__ import annotations

from typing import Any

from orchestration.findings import INPUT_DRIFT, LIVE_ACCURACY_DROP
from orchestration.live_quality import describe, evaluate_live_quality

LIMITS: dict[str, Any] = {
    "min_live_accuracy": 0.8,
    "min_feedback": 20,
    "max_input_drift": 0.5,
    "min_drift_inputs": 50,
}


def _info(
    accuracy: dict[str, Any] | None = None,
    *,
    score: float | None = 0.05,
    instances: int = 200,
    reference: bool = True,
) -> dict[str, Any]:
    drift = {"version": "7", "instances": instances, "score": score, "reference": reference}
    return {"version": "7", "live": {"window": 500, "accuracy": accuracy or {}, "drift": drift}}


def _entry(feedback: int, correct: int) -> dict[str, Any]:
    return {"feedback": feedback, "correct": correct, "accuracy": correct / feedback}


def test_healthy_live_traffic_passes_both_checks() -> None:
    summary, findings = evaluate_live_quality(_info({"7": _entry(50, 45)}), version="7", **LIMITS)
    assert findings == []
    assert summary["accuracy"]["applied"] and summary["drift"]["applied"]
    assert describe(summary)[0].startswith("live accuracy check applied: {'version': '7'")


def test_accuracy_is_judged_from_min_feedback_outcomes_on() -> None:
    _, findings = evaluate_live_quality(_info({"7": _entry(20, 15)}), version="7", **LIMITS)
    [finding] = findings
    assert finding.kind == LIVE_ACCURACY_DROP
    assert finding.details == {
        "version": "7",
        "accuracy": 0.75,
        "threshold": 0.8,
        "feedback": 20,
        "correct": 15,
        "min_feedback": 20,
        "window": 500,
    }
    summary, findings = evaluate_live_quality(_info({"7": _entry(19, 0)}), version="7", **LIMITS)
    assert findings == []
    assert summary["accuracy"]["note"] == "v7 has 19 of min_feedback 20 outcomes"


def test_only_the_production_version_is_judged() -> None:
    summary, findings = evaluate_live_quality(_info({"6": _entry(90, 9)}), version="7", **LIMITS)
    assert findings == []
    assert summary["accuracy"]["note"] == "no feedback recorded for v7 yet"


def test_drift_above_the_limit_is_a_finding() -> None:
    _, findings = evaluate_live_quality(_info(score=1.3), version="7", **LIMITS)
    [finding] = findings
    assert finding.kind == INPUT_DRIFT
    assert finding.details["score"] == 1.3 and finding.details["threshold"] == 0.5
    assert (
        finding.message
    ) == "input drift score 1.300 of v7 over 200 instances > max_input_drift 0.5"


def test_drift_is_judged_from_min_drift_inputs_instances_on() -> None:
    # One odd image scores far out of distribution, and says nothing about the traffic.
    summary, findings = evaluate_live_quality(_info(score=3.0, instances=1), version="7", **LIMITS)
    assert findings == [] and summary["drift"]["applied"] is False
    assert summary["drift"]["note"] == "v7 has 1 of min_drift_inputs 50 instances"
    _, findings = evaluate_live_quality(_info(score=3.0, instances=49), version="7", **LIMITS)
    assert findings == []
    _, findings = evaluate_live_quality(_info(score=3.0, instances=50), version="7", **LIMITS)
    [finding] = findings
    assert finding.kind == INPUT_DRIFT and finding.details["min_drift_inputs"] == 50


def test_null_scores_and_missing_sections_are_not_applied_and_say_why() -> None:
    notes = {
        "no reference": _info(score=None, reference=False),
        "no traffic": _info(score=None, instances=0),
    }
    summaries = {k: evaluate_live_quality(v, version="7", **LIMITS) for k, v in notes.items()}
    assert all(findings == [] for _, findings in summaries.values())
    assert summaries["no reference"][0]["drift"]["note"] == "v7 has no reference input statistics"
    assert summaries["no traffic"][0]["drift"]["note"] == "no instances seen by v7 yet"
    no_model: dict[str, Any] = {
        "version": None,
        "live": {"window": 500, "accuracy": {}, "drift": None},
    }
    summary, findings = evaluate_live_quality(no_model, version=None, **LIMITS)
    assert findings == []
    assert summary["accuracy"]["note"] == "no production version"
    assert summary["drift"]["note"] == "serving reports no drift statistics"
    summary, findings = evaluate_live_quality({"version": "7"}, version="7", **LIMITS)
    assert findings == []
    assert describe(summary) == [
        "live accuracy check not applied: serving reports no live section (an older serving "
        "service)",
        "live drift check not applied: serving reports no live section (an older serving service)",
    ]


def test_null_accuracy_is_not_applied() -> None:
    entry = {"feedback": 30, "correct": 0, "accuracy": None}
    summary, findings = evaluate_live_quality(_info({"7": entry}), version="7", **LIMITS)
    assert findings == [] and summary["accuracy"]["note"] == "live accuracy of v7 is null"


def test_no_version_under_the_alias_is_not_applied_and_names_the_alias() -> None:
    summary, findings = evaluate_live_quality(_info(), version=None, alias="live", **LIMITS)
    assert findings == []
    assert summary["accuracy"]["note"] == "no live version"
