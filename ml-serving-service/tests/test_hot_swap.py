"""Alias moves are picked up within the poll interval, under load, with zero failed requests;
broken versions are refused while the old one keeps serving."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import Digits, Trained
from tests.load import BackgroundLoad, LoadResult
from tests.support import (
    MlflowServer,
    NaNNet,
    Service,
    register,
    start_service,
    train_tiny,
    wait_until,
)

NAME = "swap-model"
POLL = 1.0
# Download + torch.export.load + smoke test, with room for a CPU shared with other jobs.
LOAD_BUDGET = 20.0


@dataclass
class SwapSetup:
    service: Service
    client: MlflowClient
    versions: dict[str, str]


@pytest.fixture(scope="module")
def swap(mlflow_server: MlflowServer, trained: Trained, digits: Digits) -> Iterator[SwapSetup]:
    example = digits.x_test[:2]
    other = train_tiny(digits.x_train, digits.y_train, seed=1, steps=100)
    versions = {
        "v1": register(mlflow_server.url, NAME, trained.module, example, alias="production"),
        "v2": register(mlflow_server.url, NAME, other, example),
        "nan": register(mlflow_server.url, NAME, NaNNet(), example),
        "pickle": register(
            mlflow_server.url, NAME, trained.module, example, serialization_format="pickle"
        ),
    }
    svc = start_service(
        MLFLOW_TRACKING_URI=mlflow_server.url,
        MODEL_NAME=NAME,
        MODEL_POLL_INTERVAL=str(POLL),
        ENVIRONMENT="local",
    )
    try:
        wait_until(lambda: httpx.get(f"{svc.url}/ready").status_code == 200, timeout=120)
        yield SwapSetup(svc, MlflowClient(mlflow_server.url, mlflow_server.url), versions)
    finally:
        svc.stop()


def _assert_no_failures(result: LoadResult) -> None:
    assert result.errors == []
    assert result.total > 0
    assert set(result.statuses) == {200}


def test_alias_move_swaps_under_load_with_zero_failed_requests(
    swap: SwapSetup, digits: Digits
) -> None:
    v1, v2 = swap.versions["v1"], swap.versions["v2"]
    payload = {"instances": digits.x_test[:8, 0].tolist()}
    with BackgroundLoad(f"{swap.service.url}/v1/predict", payload) as load:
        wait_until(lambda: load.result.total >= 20, timeout=30)
        moved_at = time.monotonic()
        swap.client.set_registered_model_alias(NAME, "production", v2)
        wait_until(lambda: load.seen(v2), timeout=POLL + LOAD_BUDGET, interval=0.02)
        swap_seconds = time.monotonic() - moved_at
        before = load.result.total
        wait_until(lambda: load.result.total >= before + 20, timeout=30)
    _assert_no_failures(load.result)
    print(f"swap after {swap_seconds:.2f} s, {load.result.total} requests, all 200")
    for seq in load.result.versions:
        # Each client sees v1 then v2, never back: the swap is atomic.
        assert seq == sorted(seq, key=lambda v: v != v1)
        assert seq[-1] == v2
    assert any(v1 in seq for seq in load.result.versions)
    info = httpx.get(f"{swap.service.url}/v1/model").json()
    assert info["version"] == v2


@pytest.mark.parametrize(
    ("broken", "result", "reason"),
    [("nan", "smoke_test_failed", "non-finite"), ("pickle", "unsafe", "pt2")],
)
def test_broken_version_is_refused_and_old_one_keeps_serving(
    swap: SwapSetup, digits: Digits, broken: str, result: str, reason: str
) -> None:
    serving = httpx.get(f"{swap.service.url}/v1/model").json()["version"]
    bad = swap.versions[broken]
    payload = {"instances": digits.x_test[:8, 0].tolist()}
    with BackgroundLoad(f"{swap.service.url}/v1/predict", payload, threads=2) as load:
        swap.client.set_registered_model_alias(NAME, "production", bad)
        wait_until(
            lambda: bad in httpx.get(f"{swap.service.url}/v1/model").json()["refused_versions"],
            timeout=POLL + LOAD_BUDGET,
        )
        time.sleep(2 * POLL)  # more polls must not retry or swap
    _assert_no_failures(load.result)
    assert all(v == serving for seq in load.result.versions for v in seq)
    info = httpx.get(f"{swap.service.url}/v1/model").json()
    assert info["version"] == serving
    assert reason in info["refused_versions"][bad]
    assert info["refused"]["version"] == bad and info["refused"]["result"] == result
    metrics = httpx.get(f"{swap.service.url}/metrics").text
    assert f'model_swaps_total{{result="{result}"}} 1.0' in metrics
    assert httpx.get(f"{swap.service.url}/ready").status_code == 200
