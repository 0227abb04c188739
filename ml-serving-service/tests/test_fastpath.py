"""The scoring fast path answers exactly like the FastAPI routes it bypasses.

Both are driven in-process through httpx's ASGI transport: `serving_stack(app)` (what
uvicorn runs) and the bare FastAPI `app`, whose /v1/predict and /invocations routes call the
same `Scorer`. The real-server tests (test_predict, test_invocations, test_bad_input) cover
the fast path over HTTP.
"""

from __future__ import annotations

import asyncio
import base64
import io
from typing import Any

import httpx
import numpy as np
import pytest
import torch
from PIL import Image

from serving_service.app import create_app, serving_stack
from serving_service.config import Settings
from serving_service.images import Preprocessing
from serving_service.model import LoadedModel

X = np.random.default_rng(0).random((3, 8, 8)).round(4).tolist()


def _png_base64(seed: int) -> str:
    out = io.BytesIO()
    pixels = np.random.default_rng(seed).integers(0, 256, (12, 10), dtype=np.uint8)
    Image.fromarray(pixels, "L").save(out, format="PNG")
    return base64.b64encode(out.getvalue()).decode()


IMAGES = [{"name": f"i{i}.png", "data": _png_base64(i)} for i in range(2)]

CASES: list[tuple[str, dict[str, str], bytes | dict[str, Any]]] = [
    ("/v1/predict", {}, {"instances": X}),
    ("/v1/predict", {}, {"instances": X[:1], "version": "1"}),
    ("/v1/predict", {}, b"{not json"),
    ("/v1/predict", {}, {"images": X}),
    ("/v1/predict", {}, {"instances": []}),
    ("/v1/predict", {}, {"instances": [[1.0, 2.0]]}),
    ("/v1/predict", {}, {"instances": X * 2}),  # 6 > MAX_BATCH_SIZE=5
    ("/invocations", {}, {"inputs": X}),
    ("/invocations", {}, {"dataframe_split": {"data": np.reshape(X, (3, 64)).tolist()}}),
    ("/invocations", {"content-type": "text/csv"}, b"1,2,3"),
    ("/invocations", {}, {"inputs": X, "instances": X}),
    ("/v1/predict/images", {}, {"images": IMAGES, "top_k": 3}),
    ("/v1/predict/images", {}, {"images": [{"name": "x", "data": "!!"}]}),
    ("/v1/predict/images", {}, {"images": [{"name": "t.txt", "data": "aGVsbG8="}]}),
    ("/v1/predict/images", {"content-type": "text/csv"}, b"1,2,3"),
]


def _app(with_model: bool = True) -> Any:
    settings = Settings(
        environment="local", max_batch_size=5, mlflow_tracking_uri="http://127.0.0.1:9"
    )
    app = create_app(settings)
    if with_model:
        torch.manual_seed(0)
        net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10)).eval()
        app.state.slot.current = LoadedModel(
            name="image-classifier", version="1", run_id=None, module=net,
            instance_shape=(1, 8, 8), classes=tuple(str(i) for i in range(10)),
            preprocessing=Preprocessing(image_size=8, channels=1),
        )  # fmt: skip
    return app


async def _post(app: Any, path: str, headers: dict[str, str], body: Any) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        if isinstance(body, bytes):
            headers = {"content-type": "application/json", **headers}
            return await client.post(path, content=body, headers=headers)
        return await client.post(path, json=body, headers=headers)


def _comparable(response: httpx.Response) -> tuple[int, Any]:
    body = response.json()
    if isinstance(body, dict) and "prediction_ids" in body:
        # Ids are unique per prediction; their number and form must agree.
        assert all(isinstance(i, str) and i for i in body["prediction_ids"])
        body["prediction_ids"] = len(body["prediction_ids"])
    if isinstance(body, dict) and isinstance(body.get("predictions"), list):
        for p in body["predictions"]:
            if isinstance(p, dict):  # image answers carry one id each
                assert p.pop("prediction_id")
    return response.status_code, body


@pytest.mark.parametrize(("path", "headers", "body"), CASES)
def test_fast_path_and_routes_answer_alike(
    path: str, headers: dict[str, str], body: bytes | dict[str, Any]
) -> None:
    app = _app()
    fast = asyncio.run(_post(serving_stack(app), path, headers, body))
    routed = asyncio.run(_post(app, path, headers, body))
    assert fast.headers["content-type"] == routed.headers["content-type"] == "application/json"
    assert _comparable(fast) == _comparable(routed)
    assert fast.headers["x-request-id"]


def test_no_model_is_the_same_503_on_both_paths() -> None:
    app = _app(with_model=False)
    fast = asyncio.run(_post(serving_stack(app), "/v1/predict", {}, {"instances": X}))
    routed = asyncio.run(_post(app, "/v1/predict", {}, {"instances": X}))
    assert fast.status_code == routed.status_code == 503
    assert fast.json() == routed.json()
    assert "production" in fast.json()["detail"]


def test_other_requests_pass_through_to_fastapi() -> None:
    app = serving_stack(_app())

    async def run() -> tuple[httpx.Response, httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.get("/v1/predict"), await client.get("/health")

    wrong_method, health = asyncio.run(run())
    assert wrong_method.status_code == 405
    assert health.status_code == 200 and health.json() == {"status": "ok"}
    assert health.headers["x-request-id"]
