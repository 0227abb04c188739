"""Quality gates: accuracy, missing outputs, the pipeline gate, promotion and retention rules."""

from __future__ import annotations

import ast
from typing import Any

import pytest
from orchestration.findings import QUALITY_GATE_FAILED
from orchestration.quality_gates import (
    decide_promotion,
    holdout_accuracy,
    holdout_dataset_id,
    input_mismatch,
    missing_outputs,
    pipeline_finding,
    pipeline_summary,
    promotion_finding,
    versions_to_clean,
)

from tests.conftest import DAGS_FOLDER

DAY_MS = 24 * 3600 * 1000


def _version(number: str, accuracy: float | None) -> dict:
    return {"version": number, "holdout_accuracy": accuracy}


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
        (None, 0.93, False, True, "not scored on held-out data"),
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


def _pipeline_outputs() -> dict[str, dict[str, Any]]:
    """What a run that worked hands over, step by step (the arguments of pipeline_finding)."""
    return {
        "dataset": {"dataset_id": "d1", "sha256": "ab", "n_test": 360},
        "job": {
            "job_id": "j1",
            "status": "succeeded",
            "model_version": 3,
            "metrics": {"test_accuracy": 0.97},
        },
        "model_version": {"name": "image-classifier", "version": "3", "run_id": "r3"},
        "inference": {"version": "3", "served_version": "3", "accuracy": 0.95, "n_samples": 200},
    }


def test_pipeline_that_worked_passes_and_is_summarized() -> None:
    outputs = _pipeline_outputs()
    assert pipeline_finding(**outputs, min_accuracy=0.8) is None
    assert pipeline_summary(**outputs) == {
        "dataset_id": "d1",
        "job_id": "j1",
        "model_version": "3",
        "train_test_accuracy": 0.97,
        "holdout_accuracy": 0.95,
    }


def test_pipeline_gate_reports_every_failure_with_the_numbers() -> None:
    outputs = _pipeline_outputs()
    outputs["dataset"]["sha256"] = ""
    outputs["job"]["model_version"] = 2  # the job and MLflow disagree
    outputs["inference"]["served_version"] = "1"  # serving ignored the version asked for
    outputs["inference"]["accuracy"] = 0.5

    finding = pipeline_finding(**outputs, min_accuracy=0.8)

    assert finding is not None and finding.kind == QUALITY_GATE_FAILED
    assert finding.message == (
        "missing output prepare_dataset.sha256; job registered v2, MLflow returned v3; "
        "serving answered with v1 instead of v3; held-out accuracy 0.5000 < min_accuracy 0.8"
    )
    assert finding.details == {
        "version": "3",
        "accuracy": 0.5,
        "min_accuracy": 0.8,
        "n_samples": 200,
    }


def test_rejected_candidate_becomes_a_finding_with_both_versions() -> None:
    candidate, production = _version("2", 0.75), _version("1", 0.93)
    decision = decide_promotion(candidate, production, min_accuracy=0.8, max_regression=0.02)

    finding = promotion_finding(
        decision, candidate, production, min_accuracy=0.8, max_regression=0.02
    )

    assert finding is not None and finding.kind == QUALITY_GATE_FAILED
    assert finding.message == "; ".join(decision.reasons)
    assert finding.details == {
        "version": "2",
        "accuracy": 0.75,
        "min_accuracy": 0.8,
        "production_version": "1",
        "production_accuracy": 0.93,
        "max_regression": 0.02,
        "dataset_id": None,
        "n_samples": None,
    }
    good = _version("2", 0.95)
    promoted = decide_promotion(good, production, min_accuracy=0.8, max_regression=0.02)
    assert (
        promotion_finding(promoted, good, production, min_accuracy=0.8, max_regression=0.02) is None
    )


def test_promotion_reasons_name_the_aliases_in_use() -> None:
    def decide(candidate: dict | None, production: dict | None) -> Any:
        return decide_promotion(
            candidate,
            production,
            min_accuracy=0.8,
            max_regression=0.02,
            staging_alias="candidate",
            production_alias="live",
        )

    none = decide(None, None)
    worse = decide(_version("2", 0.85), _version("1", 0.93))
    assert none.reasons == ["no version carries the candidate alias"]
    assert worse.reasons == [
        "candidate v2 accuracy 0.8500 regresses more than 0.02 below live v1 (0.9300)"
    ]


def test_holdout_dataset_is_the_training_services_dataset_id_tag() -> None:
    assert holdout_dataset_id({"version": "3", "tags": {"dataset_id": "d1"}}) == "d1"
    assert holdout_dataset_id({"version": "3", "tags": {"test_accuracy": "0.9"}}) is None


def test_gates_do_no_io() -> None:
    """The gates judge what the tasks fetched: no HTTP, registry or Airflow task API in here."""
    tree = ast.parse((DAGS_FOLDER / "orchestration" / "quality_gates.py").read_text())
    imported = {
        node.module if isinstance(node, ast.ImportFrom) else alias.name
        for node in ast.walk(tree)
        if isinstance(node, (ast.Import, ast.ImportFrom))
        for alias in node.names
    }
    allowed = {"__future__", "collections.abc", "dataclasses", "typing", "orchestration.findings"}
    assert imported <= allowed, imported - allowed


def test_input_mismatch_names_what_differs_between_two_datasets() -> None:
    digits = {"classes": [str(i) for i in range(10)], "image_size": 8, "channels": 1}
    shapes = {"classes": ["circle", "square"], "image_size": 32, "channels": 3}
    assert input_mismatch(digits, dict(digits)) is None
    reason = input_mismatch(candidate_data=shapes, production_data=digits)
    assert reason is not None
    assert "image_size 8 vs 32" in reason and "channels 1 vs 3" in reason
    assert input_mismatch({**digits, "image_size": 16}, digits) == "image_size 8 vs 16"


def test_a_production_version_on_other_inputs_does_not_block_the_candidate() -> None:
    candidate = {"version": "4", "holdout_accuracy": 0.93}
    production = {"version": "3", "holdout_accuracy": None, "not_comparable": "image_size 8 vs 32"}
    decision = decide_promotion(candidate, production, min_accuracy=0.8, max_regression=0.02)
    assert decision.promote
    assert decision.reasons[1] == (
        "production v3 takes other inputs (image_size 8 vs 32): not compared"
    )
    # The candidate's own gate still applies.
    weak = {"version": "4", "holdout_accuracy": 0.5}
    assert not decide_promotion(weak, production, min_accuracy=0.8, max_regression=0.02).promote


def test_snapshot_request_sends_the_options_that_are_set() -> None:
    from orchestration.datasets import snapshot_request

    assert snapshot_request("digits") == {"source": "digits", "test_fraction": 0.2, "seed": 42}
    assert snapshot_request("shapes", count=500, image_size=64, channels=3, seed=1) == {
        "source": "shapes",
        "test_fraction": 0.2,
        "seed": 1,
        "count": 500,
        "image_size": 64,
        "channels": 3,
    }
    # Not dropped: the service answers 422 "digits are 8x8 grayscale", which the user sees.
    assert snapshot_request("digits", image_size=32)["image_size"] == 32
    with pytest.raises(ValueError, match="unknown dataset_source 'imagenet'"):
        snapshot_request("imagenet")
