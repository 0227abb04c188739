"""POST /v1/predict against the real service, MLflow server and a digits model."""

from __future__ import annotations

import httpx
import numpy as np
import torch

from tests.conftest import Digits, Trained
from tests.support import PYPROJECT_VERSION, MlflowServer, Service, register


def test_predicts_held_out_digits(service: Service, digits: Digits, trained: Trained) -> None:
    images = digits.x_test[:, 0]  # 8x8 each, as the orchestrator sends them
    r = httpx.post(f"{service.url}/v1/predict", json={"instances": images.tolist()})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == {"name": "image-classifier", "alias": "production", "version": "1"}
    with torch.no_grad():
        expected = trained.module(torch.from_numpy(digits.x_test)).softmax(1).numpy()
    assert body["predictions"] == [str(i) for i in expected.argmax(1)]
    probs = np.asarray(body["probabilities"])
    assert probs.shape == (len(images), 10)
    np.testing.assert_allclose(probs, expected, atol=1e-5)
    accuracy = np.mean(np.asarray(body["predictions"], dtype=int) == digits.y_test)
    assert accuracy >= 0.9


def test_accepts_8x8_flat_and_channel_first_instances(service: Service, digits: Digits) -> None:
    x = digits.x_test[:5]
    shapes = [x[:, 0].tolist(), x.reshape(5, 64).tolist(), x.tolist()]
    answers = [
        httpx.post(f"{service.url}/v1/predict", json={"instances": s}).json() for s in shapes
    ]
    ids = [set(a.pop("prediction_ids")) for a in answers]
    assert answers[0] == answers[1] == answers[2]
    assert all(len(i) == 5 for i in ids) and not ids[0] & ids[1]  # each instance its own id


def test_explicit_version_scores_a_candidate(
    service: Service, mlflow_server: MlflowServer, trained: Trained, digits: Digits
) -> None:
    candidate = register(mlflow_server.url, "image-classifier", trained.module, digits.x_test[:2])
    r = httpx.post(
        f"{service.url}/v1/predict",
        json={"instances": digits.x_test[:3, 0].tolist(), "version": candidate},
        timeout=60,
    )
    assert r.status_code == 200, r.text
    assert r.json()["model"] == {"name": "image-classifier", "alias": None, "version": candidate}
    # The alias keeps answering requests without a version.
    r = httpx.post(f"{service.url}/v1/predict", json={"instances": digits.x_test[:1, 0].tolist()})
    assert r.json()["model"]["version"] == "1"


def test_unknown_version_is_404(service: Service, digits: Digits) -> None:
    r = httpx.post(
        f"{service.url}/v1/predict",
        json={"instances": digits.x_test[:1, 0].tolist(), "version": "999"},
        timeout=30,
    )
    assert r.status_code == 404
    assert "no version '999'" in r.json()["detail"]


def test_metrics_expose_the_contract_names(service: Service, digits: Digits) -> None:
    httpx.post(f"{service.url}/v1/predict", json={"instances": digits.x_test[:20, 0].tolist()})
    text = httpx.get(f"{service.url}/metrics").text
    assert 'model_version_info{alias="production",name="image-classifier",version="1"} 1.0' in text
    assert 'predictions_total{label="0",model_version="1"}' in text
    assert (
        'http_request_duration_seconds_bucket{le="0.005",method="POST",route="/v1/predict",'
        'status="200"}' in text
    )
    assert 'http_requests_total{method="POST",route="/v1/predict",status="200"}' in text
    assert 'model_swaps_total{result="success"} 1.0' in text


def test_ops_endpoints(service: Service) -> None:
    assert httpx.get(f"{service.url}/health").json() == {"status": "ok"}
    assert httpx.get(f"{service.url}/ready").json() == {"status": "ready"}
    # The running service reports the version of pyproject.toml (through the installed
    # package's metadata): a bump without `make setup` or a hard-coded version fails here.
    assert httpx.get(f"{service.url}/version").json() == {
        "service": "ml-serving-service",
        "version": PYPROJECT_VERSION,
    }
    assert httpx.get(f"{service.url}/openapi.json").json()["info"]["version"] == PYPROJECT_VERSION
    assert "/v1/predict" in httpx.get(f"{service.url}/openapi.json").json()["paths"]


def test_model_info_reports_version_run_and_metrics(service: Service, trained: Trained) -> None:
    info = httpx.get(f"{service.url}/v1/model").json()
    assert info["name"] == "image-classifier"
    assert info["alias"] == "production"
    assert info["version"] == "1"
    assert info["run_id"]
    assert info["loaded_at"]
    assert info["metrics"]["test_accuracy"] == trained.accuracy
    assert info["registry"] == "reachable"
    assert info["input_shape"] == [1, 8, 8]


def test_reload_needs_the_bearer_token(service: Service) -> None:
    from tests.conftest import TOKEN

    url = f"{service.url}/v1/model/reload"
    assert httpx.post(url).status_code == 401
    assert httpx.post(url, headers={"Authorization": "Bearer wrong"}).status_code == 401
    r = httpx.post(url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60)
    assert r.status_code == 200
    assert r.json() == {
        "name": "image-classifier",
        "alias": "production",
        "version": "1",
        "swapped": False,
    }
