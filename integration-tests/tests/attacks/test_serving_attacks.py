"""Attacks on ml-serving-service, each refused by a real service on real uvicorn.

The service runs from its own venv (`python -m serving_service`, as deployed) against a real
`mlflow server`, with the tokens docker-compose gives it: ORCHESTRATOR_TOKEN (predict,admin)
and CLIENT_TOKEN (predict,feedback). Models are registered by the serving tests' own helper
(ml-serving-service/tests/unsafe_models.py) in the serving venv: this venv has no torch. Each
test asserts the refusal, then that the service still answers /health.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[3]
SERVING = ROOT / "ml-serving-service"
VENV = ROOT / ".venvs" / "ml-serving-service" / "bin"
MODEL = "attacked-classifier"
ORCHESTRATOR = "orch-" + os.urandom(16).hex()
CLIENT = "client-" + os.urandom(16).hex()
MAX_BODY = 200_000


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"{url} exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    pytest.fail(f"{url} did not answer within {timeout} s:\n{log.read_text()[-3000:]}")


def helper(*args: str) -> str:
    """tests/unsafe_models.py of the serving subtree, run in the serving venv."""
    env = {**os.environ, "PYTHONPATH": f"{SERVING / 'src'}:{SERVING}"}
    out = subprocess.run(  # noqa: S603
        [str(VENV / "python"), "-m", "tests.unsafe_models", *args],
        cwd=SERVING, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout.strip().splitlines()[-1]


@dataclass(frozen=True)
class Stack:
    url: str
    mlflow: str
    log: Path
    marker_dir: Path


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    work = tmp_path_factory.mktemp("serving-attacks")
    mlflow_port, port = free_port(), free_port()
    mlflow_log, log = work / "mlflow.log", work / "serving.log"
    mlflow = subprocess.Popen(  # noqa: S603
        [
            str(VENV / "mlflow"), "server", "--backend-store-uri", f"sqlite:///{work}/mlflow.db",
            "--artifacts-destination", str(work / "artifacts"), "--serve-artifacts",
            "--host", "127.0.0.1", "--port", str(mlflow_port), "--workers", "1",
        ],
        stdout=mlflow_log.open("wb"), stderr=subprocess.STDOUT,
        env={**os.environ, "PATH": f"{VENV}:{os.environ['PATH']}",
             "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
    )  # fmt: skip
    procs = [mlflow]
    try:
        mlflow_url = f"http://127.0.0.1:{mlflow_port}"
        wait_for(f"{mlflow_url}/health", mlflow, mlflow_log, 300)
        helper("safe", mlflow_url, MODEL)
        env = {
            **os.environ,
            "PYTHONPATH": str(SERVING / "src"),
            "HOST": "127.0.0.1",
            "PORT": str(port),
            "MLFLOW_TRACKING_URI": mlflow_url,
            "MODEL_NAME": MODEL,
            "MODEL_POLL_INTERVAL": "1",
            # As docker-compose.yml sets them.
            "API_TOKENS": (
                f"orchestrator:predict,admin:{ORCHESTRATOR};client:predict,feedback:{CLIENT}"
            ),
            "ALLOWED_HOSTS": "proxy,serving,localhost,127.0.0.1",
            "MAX_BODY_BYTES": str(MAX_BODY),
            "FEEDBACK_MEMORY": "50",
        }
        env.pop("API_TOKEN", None)
        env.pop("PREDICT_OPEN", None)
        service = subprocess.Popen(  # noqa: S603
            [str(VENV / "python"), "-m", "serving_service"],
            stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
        procs.append(service)
        url = f"http://127.0.0.1:{port}"
        wait_for(f"{url}/ready", service, log, 300)
        yield Stack(url, mlflow_url, log, work)
    finally:
        for proc in reversed(procs):
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def digits(n: int = 1) -> dict[str, object]:
    return {"instances": [[[0.5] * 8] * 8] * n}


def still_up(stack: Stack) -> None:
    assert httpx.get(f"{stack.url}/health", timeout=10).status_code == 200
    r = httpx.post(f"{stack.url}/v1/predict", json=digits(), headers=auth(CLIENT), timeout=30)
    assert r.status_code == 200, r.text


def test_missing_wrong_and_non_ascii_tokens_are_401(stack: Stack) -> None:
    for path, body in (("/v1/predict", digits()), ("/invocations", {"inputs": [[0.0] * 64]}),
                       ("/v1/feedback", {"prediction_id": "x-0", "label": "1"}),
                       ("/v1/model/reload", None)):  # fmt: skip
        assert httpx.post(f"{stack.url}{path}", json=body).status_code == 401, path
        for raw in (
            b"Bearer wrong",
            "Bearer t\u00f6ken".encode("latin-1"),
            "Bearer \u4ee4".encode(),
        ):
            r = httpx.post(f"{stack.url}{path}", json=body, headers=[(b"Authorization", raw)])
            assert r.status_code == 401, (path, raw, r.text)
            assert r.headers["www-authenticate"] == "Bearer"
    still_up(stack)


def test_tokens_of_the_wrong_scope_are_403(stack: Stack) -> None:
    r = httpx.post(f"{stack.url}/v1/model/reload", headers=auth(CLIENT))
    assert r.status_code == 403
    assert r.json()["detail"] == "this token lacks scope 'admin' (needed for POST /v1/model/reload)"
    r = httpx.post(f"{stack.url}/v1/feedback", json={"prediction_id": "x-0", "label": "1"},
                   headers=auth(ORCHESTRATOR))  # fmt: skip
    assert r.status_code == 403 and "scope 'feedback'" in r.json()["detail"]
    ok = httpx.post(f"{stack.url}/v1/predict", json=digits(), headers=auth(ORCHESTRATOR))
    assert ok.status_code == 200
    still_up(stack)


def test_bodies_over_the_cap_are_413_without_being_read(stack: Stack) -> None:
    big = b'{"instances": [' + b"0.5," * 100_000 + b"0.5]}"  # 400 kB > MAX_BODY_BYTES
    r = httpx.post(f"{stack.url}/v1/predict", content=big, headers=auth(CLIENT), timeout=30)
    assert r.status_code == 413 and f"MAX_BODY_BYTES={MAX_BODY}" in r.json()["detail"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: chunked, 60 MB if all were read
        yield b'{"instances": ['
        for _ in range(60_000):
            yield b"0.5," * 250

    started = time.monotonic()
    r = httpx.post(f"{stack.url}/invocations", content=chunks(), headers=auth(CLIENT), timeout=60)
    assert r.status_code == 413, r.text
    assert time.monotonic() - started < 30
    r = httpx.post(f"{stack.url}/v1/feedback", content=big, headers=auth(CLIENT))
    assert r.status_code == 413
    still_up(stack)


def test_unknown_host_names_are_400(stack: Stack) -> None:
    r = httpx.get(f"{stack.url}/health", headers={"Host": "attacker.example"})
    assert r.status_code == 400 and "ALLOWED_HOSTS" in r.json()["detail"]
    assert httpx.get(f"{stack.url}/health", headers={"Host": "proxy:5001"}).status_code == 200
    still_up(stack)


def test_prediction_ids_cannot_be_derived_or_guessed(stack: Stack) -> None:
    mine = httpx.post(f"{stack.url}/v1/predict", json=digits(2), headers=auth(CLIENT)).json()
    theirs = httpx.post(f"{stack.url}/v1/predict", json=digits(1), headers=auth(CLIENT)).json()
    my_id, their_id = mine["prediction_ids"][0], theirs["prediction_ids"][0]
    for pid in (my_id, their_id):
        key, _, index = pid.rpartition("-")
        assert re.fullmatch(r"[0-9a-f]{32}", key) and index.isdigit()  # 128 random bits
    my_key, their_key = my_id.rpartition("-")[0], their_id.rpartition("-")[0]
    differing = bin(int(my_key, 16) ^ int(their_key, 16)).count("1")
    assert differing > 30, "consecutive requests' ids share their bits"
    # Guesses built from the ids one holds: neighbours, the next counter value, other indexes.
    guesses = [f"{format(int(my_key, 16) + d, '032x')}-0" for d in (-1, 1, 2)]
    # their id with its last hex digit changed (never to itself: that would be their real id)
    near_theirs = their_key[:-1] + ("1" if their_key[-1] == "0" else "0")
    guesses += [f"{my_key}-5", f"{near_theirs}-0", "0" * 32 + "-0", f"{my_key[:8]}1-0"]
    for guess in guesses:
        r = httpx.post(f"{stack.url}/v1/feedback", json={"prediction_id": guess, "label": "3"},
                       headers=auth(CLIENT))  # fmt: skip
        assert r.status_code == 404, (guess, r.text)
    live = httpx.get(f"{stack.url}/v1/model").json()["live"]["accuracy"]
    assert live == {}, "unknown ids were counted"
    r = httpx.post(f"{stack.url}/v1/feedback", json={"prediction_id": their_id, "label": "3"},
                   headers=auth(CLIENT))  # fmt: skip
    assert r.status_code == 200  # the real id, sent by its holder, counts once
    still_up(stack)


@pytest.mark.parametrize("attack", ["pickled_weight", "sample_inputs", "graph_call"])
def test_models_that_would_unpickle_are_refused_and_the_old_version_serves(
    stack: Stack, attack: str
) -> None:
    before = httpx.get(f"{stack.url}/v1/model").json()
    marker = stack.marker_dir / f"{attack}-ran"
    version = helper("unsafe", stack.mlflow, MODEL, attack, str(marker))
    subprocess.run(  # noqa: S603 - move the alias as the orchestrator would
        [str(VENV / "python"), "-c",
         "import sys; from mlflow.tracking import MlflowClient as C; "
         "C(sys.argv[1], registry_uri=sys.argv[1]).set_registered_model_alias(*sys.argv[2:])",
         stack.mlflow, MODEL, "production", version],
        check=True, timeout=120,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    info = before
    while time.monotonic() < deadline:
        info = httpx.get(f"{stack.url}/v1/model").json()
        if info["refused"] and info["refused"]["version"] == version:
            break
        time.sleep(0.5)
    assert info["refused"]["version"] == version, info
    assert info["refused"]["result"] == "unsafe"
    assert info["version"] == before["version"]  # the old version keeps serving
    assert not marker.exists(), "the payload ran"
    metrics = httpx.get(f"{stack.url}/metrics").text
    assert f'model_refused_version{{result="unsafe",version="{version}"}} 1.0' in metrics
    assert re.search(rf"refused version {version} of {MODEL} \(unsafe\)", stack.log.read_text())
    still_up(stack)
    assert not marker.exists()


def test_no_token_reaches_the_logs(stack: Stack) -> None:
    text = stack.log.read_text()
    assert ORCHESTRATOR not in text and CLIENT not in text
    assert "orchestrator (admin,predict), client (feedback,predict)" in text
