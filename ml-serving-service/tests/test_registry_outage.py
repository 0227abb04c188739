"""Before any model: 503 naming the alias. After MLflow stops: keep serving, report it."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.conftest import Digits, Trained
from tests.support import register, start_mlflow, start_service, wait_until


def test_no_model_then_load_then_mlflow_stopped(
    tmp_path: Path, trained: Trained, digits: Digits
) -> None:
    mlflow_server = start_mlflow(tmp_path / "mlflow")
    svc = None
    try:
        svc = start_service(
            MLFLOW_TRACKING_URI=mlflow_server.url, MODEL_POLL_INTERVAL="1", ENVIRONMENT="local"
        )
        url = svc.url
        images = {"instances": digits.x_test[:4, 0].tolist()}
        missing = (
            "model 'image-classifier' has no version with alias 'production'; "
            "run the training pipeline first"
        )
        wait_until(lambda: httpx.get(f"{url}/v1/model").json()["registry"] == "reachable", 60)
        r = httpx.get(f"{url}/ready")
        assert (r.status_code, r.json()["detail"]) == (503, missing)
        r = httpx.post(f"{url}/v1/predict", json=images)
        assert (r.status_code, r.json()["detail"]) == (503, missing)
        assert (
            httpx.post(f"{url}/invocations", json={"inputs": images["instances"]}).status_code
            == 503
        )

        register(mlflow_server.url, "image-classifier", trained.module, digits.x_test[:2],
                 alias="production")  # fmt: skip
        wait_until(lambda: httpx.get(f"{url}/ready").status_code == 200, timeout=60)

        mlflow_server.stop()
        wait_until(lambda: httpx.get(f"{url}/v1/model").json()["registry"] == "unreachable", 60)
        assert httpx.get(f"{url}/ready").status_code == 200
        r = httpx.post(f"{url}/v1/predict", json=images)
        assert r.status_code == 200
        assert r.json()["model"]["version"] == "1"
        info = httpx.get(f"{url}/v1/model").json()
        assert info["version"] == "1"
        assert "unreachable" in info["last_error"]
        assert "model_registry_up 0.0" in httpx.get(f"{url}/metrics").text
        # An explicit version cannot be fetched now: 503, not 500.
        r = httpx.post(f"{url}/v1/predict", json={**images, "version": "7"})
        assert r.status_code == 503
    finally:
        if svc is not None:
            svc.stop()
        mlflow_server.stop()
