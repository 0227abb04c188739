"""Session fixtures: one real MLflow server, the digits data and a trained tiny model."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from tests.support import (
    MlflowServer,
    Service,
    TinyNet,
    register,
    start_mlflow,
    start_service,
    train_tiny,
    wait_until,
)

torch.set_num_threads(1)


@dataclass(frozen=True)
class Digits:
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray  # float32 (N, 1, 8, 8) in 0..1, like the training service
    y_test: np.ndarray


@dataclass(frozen=True)
class Trained:
    module: TinyNet
    accuracy: float


@pytest.fixture(scope="session")
def digits() -> Digits:
    data = load_digits()
    x = (data.images / 16.0).astype(np.float32)[:, None, :, :]
    y = data.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.2, random_state=42, stratify=y)
    return Digits(x_tr, y_tr, x_te, y_te)


@pytest.fixture(scope="session")
def trained(digits: Digits) -> Trained:
    module = train_tiny(digits.x_train, digits.y_train)
    with torch.no_grad():
        pred = module(torch.from_numpy(digits.x_test)).argmax(1).numpy()
    return Trained(module, float((pred == digits.y_test).mean()))


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    server = start_mlflow(Path(tmp_path_factory.mktemp("mlflow")))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def production_model(mlflow_server: MlflowServer, trained: Trained, digits: Digits) -> str:
    """'image-classifier' version 1 with alias 'production'; returns the version."""
    return register(
        mlflow_server.url,
        "image-classifier",
        trained.module,
        digits.x_test[:2],
        alias="production",
        test_accuracy=trained.accuracy,
    )


TOKEN = "test-token-0123456789"


@pytest.fixture(scope="session")
def service(mlflow_server: MlflowServer, production_model: str) -> Iterator[Service]:
    """The service on 'image-classifier@production', ready to answer."""
    svc = start_service(
        MLFLOW_TRACKING_URI=mlflow_server.url,
        API_TOKEN=TOKEN,
        PREDICT_OPEN="true",  # the scoring tests send no token; tests/test_auth.py does
        MAX_BATCH_SIZE="512",
        MODEL_POLL_INTERVAL="2",
    )
    try:
        wait_until(lambda: httpx.get(f"{svc.url}/ready").status_code == 200, timeout=120)
        yield svc
    finally:
        svc.stop()
