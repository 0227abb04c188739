"""Live monitoring: prediction ids, feedback accuracy per version, input drift, request ids.

A service of its own (small window and memory, debug JSON logs to a file) serves a model
registered with the training data's per-pixel statistics, as the training service logs it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest

from serving_service.monitoring import InputRing, InputStats
from tests.conftest import Digits, Trained
from tests.support import MlflowServer, Service, register, start_service, wait_until

NAME = "monitored-classifier"
WINDOW = 40
MEMORY = 100


@dataclass
class Monitored:
    service: Service
    version: str
    log: Path


@pytest.fixture(scope="module")
def monitored(
    mlflow_server: MlflowServer, trained: Trained, digits: Digits, tmp_path_factory
) -> Iterator[Monitored]:
    flat = digits.x_train.reshape(len(digits.x_train), -1)
    stats = {"mean": flat.mean(0).tolist(), "std": flat.std(0).tolist(), "count": len(flat)}
    version = register(
        mlflow_server.url, NAME, trained.module, digits.x_test[:2], alias="production",
        input_stats=stats,
    )  # fmt: skip
    log = tmp_path_factory.mktemp("monitored") / "service.log"
    svc = start_service(
        log,
        MLFLOW_TRACKING_URI=mlflow_server.url,
        MODEL_NAME=NAME,
        ENVIRONMENT="local",
        MONITOR_WINDOW=str(WINDOW),
        FEEDBACK_MEMORY=str(MEMORY),
        LOG_LEVEL="debug",
        LOG_FORMAT="json",
    )
    try:
        wait_until(lambda: httpx.get(f"{svc.url}/ready").status_code == 200, timeout=120)
        yield Monitored(svc, version, log)
    finally:
        svc.stop()


def _predict(url: str, images: np.ndarray) -> dict:
    r = httpx.post(f"{url}/v1/predict", json={"instances": images.tolist()}, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def _feedback(url: str, prediction_id: str, label: object) -> httpx.Response:
    return httpx.post(
        f"{url}/v1/feedback", json={"prediction_id": prediction_id, "label": label}, timeout=10
    )


def _live(url: str) -> dict:
    return httpx.get(f"{url}/v1/model", timeout=10).json()["live"]


def _metric(url: str, name: str, **labels: str) -> float | None:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_feedback_gives_live_accuracy_per_version(monitored: Monitored, digits: Digits) -> None:
    url = monitored.service.url
    images, truth = digits.x_test[:12, 0], digits.y_test[:12]
    # One wrong label on purpose makes the expected accuracy differ from the model's own.
    truth = truth.copy()
    truth[0] = (truth[0] + 1) % 10
    body = _predict(url, images)
    ids = body["prediction_ids"]
    assert len(ids) == len(images) == len(set(ids))
    outcomes = []
    for pid, label, predicted in zip(ids, truth, body["predictions"], strict=True):
        r = _feedback(url, pid, int(label))  # numbers are accepted as class labels
        assert r.status_code == 200, r.text
        assert r.json() == {
            "prediction_id": pid,
            "model_version": monitored.version,
            "predicted": predicted,
            "label": str(label),
            "correct": predicted == str(label),
        }
        outcomes.append(predicted == str(label))
    expected = sum(outcomes) / len(outcomes)
    assert expected < 1.0
    live = _live(url)
    assert live["window"] == WINDOW
    assert live["accuracy"][monitored.version] == {
        "feedback": len(outcomes),
        "correct": sum(outcomes),
        "accuracy": pytest.approx(expected),
    }
    assert _metric(url, "model_live_accuracy", version=monitored.version) == pytest.approx(expected)
    wrong = _metric(url, "model_feedback_total", version=monitored.version, outcome="wrong")
    assert wrong == len(outcomes) - sum(outcomes)


def test_feedback_errors_say_what_to_fix(monitored: Monitored, digits: Digits) -> None:
    url = monitored.service.url
    pid = _predict(url, digits.x_test[:1, 0])["prediction_ids"][0]
    unknown = _feedback(url, "nope-0", "3")
    assert unknown.status_code == 404
    assert "never issued" in unknown.json()["detail"]
    out_of_range = _feedback(url, pid[:-1] + "7", "3")
    assert out_of_range.status_code == 404
    bad_label = _feedback(url, pid, "cat")
    assert bad_label.status_code == 422
    assert "'cat' is not a class" in bad_label.json()["detail"]
    assert _feedback(url, pid, "3").status_code == 200
    again = _feedback(url, pid, "3")
    assert again.status_code == 409
    assert "already recorded" in again.json()["detail"]
    missing = httpx.post(f"{url}/v1/feedback", json={"prediction_id": pid})
    assert missing.status_code == 422
    assert "label" in missing.json()["detail"]


def test_old_prediction_ids_expire(monitored: Monitored, digits: Digits) -> None:
    url = monitored.service.url
    first = _predict(url, digits.x_test[:1, 0])["prediction_ids"][0]
    for _ in range(MEMORY // 20 + 1):
        _predict(url, digits.x_test[:20, 0])
    r = _feedback(url, first, "1")
    assert r.status_code == 404
    assert f"last {MEMORY} predictions" in r.json()["detail"]


def test_drift_score_rises_when_inputs_change(monitored: Monitored, digits: Digits) -> None:
    url = monitored.service.url
    _predict(url, digits.x_test[:WINDOW, 0])
    calm = _live(url)["drift"]
    assert calm["version"] == monitored.version
    assert calm["reference"] is True
    assert calm["instances"] == WINDOW
    assert calm["score"] < 0.3
    # Inverted images (white background): the live mean moves far from the training mean.
    _predict(url, 1.0 - digits.x_test[:WINDOW, 0])
    drifted = _live(url)["drift"]
    assert drifted["score"] > 1.0
    exported = _metric(url, "model_input_drift_score", version=monitored.version)
    assert exported == pytest.approx(drifted["score"], rel=1e-4)
    # Scoring an explicit version is a candidate test, not live traffic: no effect on drift.
    httpx.post(
        f"{url}/v1/predict",
        json={"instances": digits.x_test[:WINDOW, 0].tolist(), "version": monitored.version},
    )
    assert _live(url)["drift"]["score"] == drifted["score"]


def test_version_without_statistics_reports_no_score(service: Service, digits: Digits) -> None:
    _predict(service.url, digits.x_test[:3, 0])
    drift = _live(service.url)["drift"]
    assert drift["reference"] is False
    assert drift["score"] is None
    assert drift["instances"] >= 3


def test_request_id_is_echoed_and_in_json_logs(monitored: Monitored, digits: Digits) -> None:
    url = monitored.service.url
    given = "model_management/manual__2026-11-26T08:00:00+00:00"
    r = httpx.post(
        f"{url}/v1/predict",
        json={"instances": digits.x_test[:1, 0].tolist()},
        headers={"X-Request-ID": given},
    )
    assert r.headers["x-request-id"] == given
    generated = httpx.get(f"{url}/health").headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated)
    replaced = httpx.get(f"{url}/health", headers={"X-Request-ID": "two words"})
    assert replaced.headers["x-request-id"] != "two words"

    def logged() -> list[dict]:
        lines = monitored.log.read_text().splitlines()
        entries = [json.loads(line) for line in lines if line.startswith("{")]
        return [e for e in entries if e.get("request_id") == given]

    wait_until(lambda: bool(logged()), timeout=10)
    entry = logged()[0]
    assert entry["service"] == "ml-serving-service"
    assert "/v1/predict" in entry["message"]
    assert {"ts", "level", "logger"} <= entry.keys()
    # Every line the service wrote is JSON (uvicorn's own lines included).
    assert all(line.startswith("{") for line in monitored.log.read_text().splitlines() if line)


def test_input_ring_keeps_exactly_the_last_window() -> None:
    rng = np.random.default_rng(0)
    reference = InputStats(mean=np.zeros(4), std=np.zeros(4), count=1)
    ring = InputRing("1", size=4, window=5, reference=reference)
    seen = []
    for n in (3, 3, 1, 7, 2):
        batch = rng.random((n, 2, 2), dtype=np.float32)
        ring.add(batch)
        seen.extend(batch.reshape(n, 4))
        last = np.asarray(seen[-5:])
        report = ring.report()
        assert report["instances"] == min(5, len(seen))
        expected = float((np.abs(last.mean(0)) / 0.1).mean())
        assert report["score"] == pytest.approx(expected, rel=1e-5)


def test_input_stats_that_do_not_match_the_input_are_ignored() -> None:
    assert InputStats.parse({"mean": [0.0] * 64, "std": [1.0] * 64}, 64) is not None
    assert InputStats.parse({"mean": [0.0] * 10, "std": [1.0] * 10}, 64) is None
    assert InputStats.parse("not a dict", 64) is None
    assert InputStats.parse({"mean": [0.0] * 64}, 64) is None
