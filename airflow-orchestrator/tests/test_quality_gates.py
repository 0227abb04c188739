"""Quality gates: accuracy, missing outputs, the promotion rule and the retention rule."""

from __future__ import annotations

import pytest
from orchestration.quality_gates import (
    decide_promotion,
    holdout_accuracy,
    missing_outputs,
    versions_to_clean,
)

DAY_MS = 24 * 3600 * 1000


def _version(number: str, accuracy: float | None) -> dict:
    return {"version": number, "test_accuracy": accuracy}


def test_holdout_accuracy_compares_labels_as_strings() -> None:
    assert holdout_accuracy(["1", "2", "3", "4"], [1, 2, 0, 4]) == 0.75
    with pytest.raises(ValueError, match="3 predictions for 2 labels"):
        holdout_accuracy(["1", "2", "3"], ["1", "2"])
    with pytest.raises(ValueError, match="no held-out samples"):
        holdout_accuracy([], [])


def test_missing_outputs_names_absent_steps_and_empty_keys() -> None:
    outputs = {"a": {"x": 1, "y": ""}, "b": None}
    assert missing_outputs(outputs, {"a": ["x", "y"], "b": ["z"], "c": ["w"]}) == [
        "a.y",
        "b",
        "c",
    ]


def test_first_good_candidate_is_promoted_when_there_is_no_production() -> None:
    decision = decide_promotion(_version("1", 0.9), None, min_accuracy=0.8, max_regression=0.02)
    assert decision.promote and not decision.rejected
    assert (decision.candidate, decision.production) == ("1", None)


@pytest.mark.parametrize(
    ("candidate", "production", "promote", "rejected", "reason"),
    [
        (0.95, 0.93, True, False, "passes all gates"),
        (0.92, 0.93, True, False, "passes all gates"),  # within max_regression
        (0.90, 0.93, False, True, "regresses more than 0.02"),
        (0.80, None, False, True, "<= min_accuracy 0.8"),  # strictly greater is required
        (None, 0.93, False, True, "no test_accuracy tag"),
    ],
)
def test_promotion_rule(
    candidate: float | None,
    production: float | None,
    promote: bool,
    rejected: bool,
    reason: str,
) -> None:
    prod = _version("1", production) if production is not None else None
    decision = decide_promotion(
        _version("2", candidate), prod, min_accuracy=0.8, max_regression=0.02
    )
    assert (decision.promote, decision.rejected) == (promote, rejected)
    assert reason in " ".join(decision.reasons)


def test_no_candidate_or_candidate_already_in_production_is_a_no_op() -> None:
    none = decide_promotion(None, _version("1", 0.9), min_accuracy=0.8, max_regression=0.02)
    same = decide_promotion(
        _version("1", 0.9), _version("1", 0.9), min_accuracy=0.8, max_regression=0.02
    )
    for decision in (none, same):
        assert not decision.promote and not decision.rejected


def test_only_old_versions_without_alias_are_cleaned() -> None:
    now = 100 * DAY_MS
    versions = [
        {"version": "1", "creation_timestamp": now - 40 * DAY_MS, "aliases": []},
        {"version": "2", "creation_timestamp": now - 40 * DAY_MS, "aliases": ["archive"]},
        {"version": "3", "creation_timestamp": now - 40 * DAY_MS, "aliases": []},
        {"version": "4", "creation_timestamp": now - 29 * DAY_MS, "aliases": []},
    ]
    # v3 got the production alias after the listing was taken: the fresh alias map protects it.
    stale = versions_to_clean(versions, {"production": "3"}, now_ms=now, retention_days=30)
    assert stale == ["1"]
