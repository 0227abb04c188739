"""POST /invocations answers like `mlflow models serve` (same output as mlflow.pyfunc)."""

from __future__ import annotations

import httpx
import mlflow
import numpy as np
import pytest

from tests.conftest import Digits
from tests.support import MlflowServer, Service


@pytest.fixture(scope="module")
def pyfunc_logits(mlflow_server: MlflowServer, production_model: str, digits: Digits) -> np.ndarray:
    mlflow.set_tracking_uri(mlflow_server.url)
    model = mlflow.pyfunc.load_model(f"models:/image-classifier/{production_model}")
    return np.asarray(model.predict(digits.x_test[:16]))


@pytest.mark.parametrize("fmt", ["inputs", "instances", "dataframe_split", "dataframe_records"])
def test_invocations_match_pyfunc(
    service: Service, digits: Digits, pyfunc_logits: np.ndarray, fmt: str
) -> None:
    x = digits.x_test[:16]
    flat = x.reshape(16, 64).tolist()
    columns = [f"p{i}" for i in range(64)]
    payload = {
        "inputs": {"inputs": x.tolist()},
        "instances": {"instances": x.tolist()},
        "dataframe_split": {"dataframe_split": {"columns": columns, "data": flat}},
        "dataframe_records": {
            "dataframe_records": [dict(zip(columns, row, strict=True)) for row in flat]
        },
    }[fmt]
    r = httpx.post(f"{service.url}/invocations", json=payload)
    assert r.status_code == 200, r.text
    got = np.asarray(r.json()["predictions"])
    assert got.shape == pyfunc_logits.shape
    np.testing.assert_allclose(got, pyfunc_logits, rtol=1e-4, atol=1e-5)
