"""Replicas sharing one Redis (STATE_URL): feedback counts once whichever replica gets it,
every replica shows the same live figures, a reload on one reloads all, Redis outages.

Two real serving processes (A with STATE_URL, B with STATE_URL_FILE) and one with
WORKERS=2 run against a real redis-server with a password and the session's MLflow server.
Their alias poll interval is long, so a replica that swaps did so because it was told.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from mlflow.tracking import MlflowClient

from serving_service.config import Settings
from tests.conftest import Digits, Trained
from tests.redis_support import RedisServer, redis_server_binary
from tests.support import MlflowServer, Service, register, start_service, train_tiny, wait_until

NAME = "shared-classifier"
WORKERS_NAME = "shared-workers-classifier"
POLL = "600"  # no convergence by polling within a test


@dataclass
class Replicas:
    a: Service
    b: Service
    redis: RedisServer
    logs: list[Path]
    versions: tuple[str, str]
    client: MlflowClient


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"), redis_server_binary())
    server.start()
    yield server
    server.stop()


def _two_versions(url: str, name: str, trained: Trained, digits: Digits) -> tuple[str, str]:
    other = train_tiny(digits.x_train, digits.y_train, seed=2, steps=60)
    first = register(url, name, trained.module, digits.x_test[:2], alias="production")
    return first, register(url, name, other, digits.x_test[:2])


def _listeners(server: RedisServer, name: str) -> int:
    """Processes subscribed to the reload channel of `name`@production."""
    channel = f"serving:{name}:production:reload"
    return int(dict(server.client().pubsub_numsub(channel))[channel])


def _ready(url: str) -> bool:
    return httpx.get(f"{url}/ready", timeout=5).status_code == 200


@pytest.fixture(scope="module")
def replicas(
    mlflow_server: MlflowServer,
    trained: Trained,
    digits: Digits,
    redis_server: RedisServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Replicas]:
    versions = _two_versions(mlflow_server.url, NAME, trained, digits)
    folder = tmp_path_factory.mktemp("replicas")
    url_file = folder / "state_url"
    url_file.write_text(redis_server.url() + "\n")
    common = {
        "MLFLOW_TRACKING_URI": mlflow_server.url,
        "MODEL_NAME": NAME,
        "MODEL_POLL_INTERVAL": POLL,
        "ENVIRONMENT": "local",
        "LOG_LEVEL": "debug",
    }
    logs = [folder / "a.log", folder / "b.log"]
    a = start_service(logs[0], STATE_URL=redis_server.url(), **common)
    b = start_service(logs[1], STATE_URL_FILE=str(url_file), **common)
    try:
        wait_until(lambda: _ready(a.url) and _ready(b.url), timeout=120)
        wait_until(lambda: _listeners(redis_server, NAME) == 2, timeout=30)
        client = MlflowClient(mlflow_server.url, mlflow_server.url)
        yield Replicas(a, b, redis_server, logs, versions, client)
    finally:
        a.stop()
        b.stop()


def _predict(url: str, images) -> dict:  # type: ignore[no-untyped-def]
    r = httpx.post(f"{url}/v1/predict", json={"instances": images.tolist()}, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def _feedback(url: str, prediction_id: str, label: object) -> httpx.Response:
    body = {"prediction_id": prediction_id, "label": label}
    return httpx.post(f"{url}/v1/feedback", json=body, timeout=10)


def _model(url: str) -> dict:
    r = httpx.get(f"{url}/v1/model", timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def test_feedback_on_another_replica_counts_once(replicas: Replicas, digits: Digits) -> None:
    a, b = replicas.a.url, replicas.b.url
    version = replicas.versions[0]
    before = _model(a)["live"]["accuracy"].get(version, {"feedback": 0, "correct": 0})
    body = _predict(a, digits.x_test[:6, 0])
    truth = [str(label) for label in digits.y_test[:6]]
    truth[0] = str((int(truth[0]) + 1) % 10)  # one wrong on purpose
    correct = 0
    for i, (pid, label) in enumerate(zip(body["prediction_ids"], truth, strict=True)):
        first, other = (b, a) if i % 2 == 0 else (a, b)
        r = _feedback(first, pid, label)
        assert r.status_code == 200, r.text
        assert r.json()["model_version"] == version
        assert r.json()["predicted"] == body["predictions"][i]
        correct += r.json()["correct"]
        for url in (first, other):
            again = _feedback(url, pid, label)
            assert again.status_code == 409, again.text
            assert "already recorded" in again.json()["detail"]
    assert _feedback(b, body["prediction_ids"][0][:-1] + "9", "1").status_code == 404
    bad = _feedback(b, _predict(a, digits.x_test[:1, 0])["prediction_ids"][0], "cat")
    assert bad.status_code == 422 and "'cat' is not a class" in bad.json()["detail"]
    live_a, live_b = _model(a)["live"], _model(b)["live"]
    assert live_a["state"] == live_b["state"] == "shared"
    assert live_a["accuracy"] == live_b["accuracy"]
    after = live_a["accuracy"][version]
    assert after["feedback"] == before["feedback"] + 6
    assert after["correct"] == before["correct"] + correct
    assert after["accuracy"] == pytest.approx(after["correct"] / after["feedback"])


def test_reload_on_one_replica_reloads_the_others(replicas: Replicas) -> None:
    a, b = replicas.a.url, replicas.b.url
    first, second = replicas.versions
    replicas.client.set_registered_model_alias(NAME, "production", second)
    try:
        assert _model(b)["version"] == first  # B polls every 10 minutes: not by itself
        r = httpx.post(f"{a}/v1/model/reload", timeout=120)
        assert r.status_code == 200 and r.json()["version"] == second, r.text
        wait_until(lambda: _model(b)["version"] == second, timeout=60)
    finally:
        replicas.client.set_registered_model_alias(NAME, "production", first)
    r = httpx.post(f"{b}/v1/model/reload", timeout=120)
    assert r.status_code == 200 and r.json()["version"] == first, r.text
    wait_until(lambda: _model(a)["version"] == first, timeout=60)


def test_redis_outage_degrades_then_recovers(replicas: Replicas, digits: Digits) -> None:
    a, b, server = replicas.a.url, replicas.b.url, replicas.redis
    server.stop()
    try:
        during = _predict(a, digits.x_test[:2, 0])  # predictions keep working
        label = during["predictions"][0]
        down = _feedback(b, during["prediction_ids"][0], label)
        assert down.status_code == 503, down.text
        assert "STATE_URL" in down.json()["detail"]
        assert server.password not in down.text
        wait_until(lambda: httpx.get(f"{a}/ready").json()["status"] == "degraded", timeout=30)
        ready = httpx.get(f"{a}/ready")
        assert ready.status_code == 200 and "feedback answers 503" in ready.json()["detail"]
        live = _model(b)["live"]
        assert live["state"] == "unavailable" and live["accuracy"] == {}
    finally:
        server.start()  # same port and password, empty
    # The ids A issued while Redis was down are written when it answers again.
    wait_until(
        lambda: _feedback(b, during["prediction_ids"][0], label).status_code == 200, timeout=30
    )
    for url in (a, b):
        wait_until(lambda u=url: httpx.get(f"{u}/ready").json() == {"status": "ready"}, 30)
    assert _model(a)["live"]["accuracy"] == _model(b)["live"]["accuracy"]
    assert _model(a)["live"]["accuracy"][replicas.versions[0]]["feedback"] == 1
    # The reload channel subscribed again: a reload on B reaches A.
    wait_until(lambda: _listeners(server, NAME) == 2, timeout=30)
    first, second = replicas.versions
    replicas.client.set_registered_model_alias(NAME, "production", second)
    try:
        r = httpx.post(f"{b}/v1/model/reload", timeout=120)
        assert r.status_code == 200 and r.json()["version"] == second, r.text
        wait_until(lambda: _model(a)["version"] == second, timeout=60)
    finally:
        replicas.client.set_registered_model_alias(NAME, "production", first)


def test_state_url_never_reaches_logs_or_answers(replicas: Replicas) -> None:
    password = replicas.redis.password
    for url in (replicas.a.url, replicas.b.url):
        for path in ("/version", "/v1/model", "/ready", "/openapi.json"):
            assert password not in httpx.get(f"{url}{path}", timeout=10).text
    for log in replicas.logs:
        text = log.read_text(errors="replace")
        assert "shared state and reload broadcast: redis://127.0.0.1:" in text
        assert password not in text


def _all(urls: list[str], call) -> list:  # type: ignore[no-untyped-def]
    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(call, urls))


def test_two_workers_in_one_process_group_share_the_state(
    mlflow_server: MlflowServer,
    trained: Trained,
    digits: Digits,
    redis_server: RedisServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """Requests land on either worker (fresh connections, sent concurrently); with the state
    in one worker each, feedback and figures would disagree about half the time."""
    first, second = _two_versions(mlflow_server.url, WORKERS_NAME, trained, digits)
    svc = start_service(
        tmp_path_factory.mktemp("workers") / "service.log",
        MLFLOW_TRACKING_URI=mlflow_server.url,
        MODEL_NAME=WORKERS_NAME,
        MODEL_POLL_INTERVAL=POLL,
        ENVIRONMENT="local",
        WORKERS="2",
        STATE_URL=redis_server.url(db=2),
    )
    client = MlflowClient(mlflow_server.url, mlflow_server.url)
    try:
        urls = [svc.url] * 16
        wait_until(lambda: all(_all(urls, _ready)), timeout=180)
        # Both workers are up: each subscribed to the reload channel.
        wait_until(lambda: _listeners(redis_server, WORKERS_NAME) == 2, timeout=120)
        wait_until(lambda: all(_all(urls, _ready)), timeout=180)
        images = digits.x_test[:1, 0]
        answers = _all(urls, lambda u: _predict(u, images))
        ids = [answer["prediction_ids"][0] for answer in answers]
        label = answers[0]["predictions"][0]
        statuses = _all(ids, lambda pid: _feedback(svc.url, pid, label).status_code)
        assert statuses == [200] * len(ids)
        again = _all(ids, lambda pid: _feedback(svc.url, pid, label).status_code)
        assert again == [409] * len(ids)
        figures = _all(urls, lambda u: json.dumps(_model(u)["live"]["accuracy"]))
        assert len(set(figures)) == 1
        assert json.loads(figures[0])[first]["feedback"] == len(ids)
        client.set_registered_model_alias(WORKERS_NAME, "production", second)
        r = httpx.post(f"{svc.url}/v1/model/reload", timeout=120)
        assert r.status_code == 200 and r.json()["version"] == second, r.text
        wait_until(lambda: {m["version"] for m in _all(urls, _model)} == {second}, timeout=60)
    finally:
        svc.stop()


def test_without_state_url_the_state_is_the_process_own(service: Service) -> None:
    assert _model(service.url)["live"]["state"] == "process"
    assert httpx.get(f"{service.url}/ready").json() == {"status": "ready"}


def test_state_url_settings_check_the_url_without_echoing_it(tmp_path: Path) -> None:
    secret = "hunter2-state"
    with pytest.raises(ValueError, match="STATE_URL must be a Redis URL") as bad:
        Settings(environment="local", state_url=f"http://:{secret}@redis:6379/1")
    assert secret not in str(bad.value)
    path = tmp_path / "url"
    path.write_text(f"redis://:{secret}@redis:6379/1\n")
    settings = Settings(environment="local", state_url_file=path)
    assert settings.shared_state_url == f"redis://:{secret}@redis:6379/1"
    assert secret not in repr(settings)
    with pytest.raises(ValueError, match="set only one"):
        Settings(environment="local", state_url="redis://x", state_url_file=path)
    assert Settings(environment="local", state_url="").shared_state_url is None
