"""POST /v1/predict/images against the real service: an RGB 32x32 model logged with the
contract's `preprocessing` metadata, and the 1-channel digits model logged without it.

Every answer from files is checked against the tensor path (`/v1/predict`) on the pixels the
contract's preprocessing gives (written out independently in `image_support.py`).
"""

from __future__ import annotations

import base64
from collections.abc import Iterator

import httpx
import numpy as np
import pytest
import torch
from PIL import Image

from tests.conftest import TOKEN, Digits
from tests.image_support import (
    COLOURS,
    ColourNet,
    contract_pixels,
    encode,
    noisy_image,
    png_header_only,
    preprocessing,
)
from tests.support import MlflowServer, Service, register, start_service, wait_until

RGB_MODEL = "colours-rgb32"


@pytest.fixture(scope="module")
def rgb_service(mlflow_server: MlflowServer) -> Iterator[Service]:
    """A service on an RGB 32x32 model, with small caps to test the 413s."""
    example = np.random.default_rng(0).random((2, 3, 32, 32), dtype=np.float32)
    register(
        mlflow_server.url, RGB_MODEL, ColourNet(), example, alias="production",
        classes=COLOURS, metadata={"preprocessing": preprocessing(32, 3)},
    )  # fmt: skip
    svc = start_service(
        MLFLOW_TRACKING_URI=mlflow_server.url, MODEL_NAME=RGB_MODEL, API_TOKEN=TOKEN,
        PREDICT_OPEN="true",
        MAX_IMAGES_PER_REQUEST="4", MAX_IMAGE_PIXELS="1000000",
    )  # fmt: skip
    try:
        wait_until(lambda: httpx.get(f"{svc.url}/ready").status_code == 200, timeout=120)
        yield svc
    finally:
        svc.stop()


def _files(images: list[tuple[str, bytes, str]]) -> list[tuple[str, tuple[str, bytes, str]]]:
    return [("files", image) for image in images]


def _tensor_answer(url: str, pixels: list[np.ndarray]) -> dict:  # type: ignore[type-arg]
    r = httpx.post(f"{url}/v1/predict", json={"instances": np.stack(pixels).tolist()})
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def _assert_same(answer: dict, tensor: dict, names: list[str]) -> None:  # type: ignore[type-arg]
    got = answer["predictions"]
    assert [p["name"] for p in got] == names  # in the order sent
    assert [p["label"] for p in got] == tensor["predictions"]
    for p, probs in zip(got, tensor["probabilities"], strict=True):
        want = sorted(probs, reverse=True)[: len(p["top_k"])]
        np.testing.assert_allclose([t["probability"] for t in p["top_k"]], want, atol=1e-6)
        assert p["top_k"][0]["label"] == p["label"]
        assert p["probability"] == p["top_k"][0]["probability"]


def test_png_and_jpeg_of_other_sizes_answer_like_the_tensor_path(rgb_service: Service) -> None:
    sent = [
        ("wide.png", encode(noisy_image(50, 40, 0, seed=1), "PNG"), "image/png"),
        ("big.jpg", encode(noisy_image(100, 64, 2, seed=2), "JPEG"), "image/jpeg"),
        ("gray.png", encode(noisy_image(20, 20, None, seed=3, mode="L"), "PNG"), "image/png"),
        ("exact.png", encode(noisy_image(32, 32, 1, seed=4), "PNG"), "image/png"),
    ]
    r = httpx.post(f"{rgb_service.url}/v1/predict/images", files=_files(sent), timeout=30)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == {"name": RGB_MODEL, "alias": "production", "version": "1"}
    tensor = _tensor_answer(rgb_service.url, [contract_pixels(d, 32, 3) for _, d, _ in sent])
    _assert_same(body, tensor, [name for name, _, _ in sent])
    # The dominant colour of each image is its class: the RGB order and scale are right.
    assert [p["label"] for p in body["predictions"]][:2] == ["red", "blue"]
    assert body["predictions"][3]["label"] == "green"
    assert all(len(p["top_k"]) == 3 for p in body["predictions"])  # default 5, 3 classes


def test_base64_json_answers_like_multipart(rgb_service: Service) -> None:
    files = [encode(noisy_image(40 + i, 30, i % 3, seed=10 + i), "PNG") for i in range(3)]
    images = [{"name": f"n{i}", "data": base64.b64encode(f).decode()} for i, f in enumerate(files)]
    images[2]["data"] = "data:image/png;base64," + images[2]["data"]
    r = httpx.post(
        f"{rgb_service.url}/v1/predict/images", json={"images": images, "top_k": 2}, timeout=30
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert all(len(p["top_k"]) == 2 for p in body["predictions"])
    tensor = _tensor_answer(rgb_service.url, [contract_pixels(f, 32, 3) for f in files])
    _assert_same(body, tensor, ["n0", "n1", "n2"])
    assert [p["label"] for p in body["predictions"]] == ["red", "green", "blue"]
    # top_k as a query parameter, or as a form field, works for multipart
    r = httpx.post(
        f"{rgb_service.url}/v1/predict/images?top_k=1",
        files=_files([("a.png", files[0], "image/png")]),
    )
    assert [t["label"] for t in r.json()["predictions"][0]["top_k"]] == ["red"]
    r = httpx.post(
        f"{rgb_service.url}/v1/predict/images",
        files=_files([("b.png", files[1], "image/png")]),
        data={"top_k": "2"},
    )
    assert [t["label"] for t in r.json()["predictions"][0]["top_k"]][0] == "green"
    assert len(r.json()["predictions"][0]["top_k"]) == 2


def test_prediction_ids_take_feedback(rgb_service: Service) -> None:
    sent = [(f"{c}.png", encode(noisy_image(32, 32, i, seed=i), "PNG"), "image/png")
            for i, c in enumerate(COLOURS)]  # fmt: skip
    body = httpx.post(f"{rgb_service.url}/v1/predict/images", files=_files(sent)).json()
    ids = [p["prediction_id"] for p in body["predictions"]]
    assert len(set(ids)) == 3
    for pid, label in zip(ids, ["red", "red", "blue"], strict=True):
        r = httpx.post(
            f"{rgb_service.url}/v1/feedback",
            json={"prediction_id": pid, "label": label},
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
        assert r.status_code == 200, r.text
    accuracy = httpx.get(f"{rgb_service.url}/v1/model").json()["live"]["accuracy"]["1"]
    assert accuracy["feedback"] == 3 and accuracy["correct"] == 2


@pytest.mark.parametrize(
    ("name", "data", "status", "detail"),
    [
        ("anim.gif", encode(noisy_image(8, 8, 0, seed=0), "GIF"), 415, "'anim.gif' is not a PNG"),
        ("notes.txt", b"just text", 415, "'notes.txt' is not a PNG or JPEG"),
        ("cut.png", encode(noisy_image(64, 64, 0, seed=0), "PNG")[:300], 422,
         "'cut.png' is a corrupt"),
        ("bad.jpg", b"\xff\xd8\xff\xe0" + b"\x00" * 50, 422, "'bad.jpg' is a corrupt JPEG"),
        ("huge.png", png_header_only(1001, 1000), 413, "'huge.png' has 1001x1000 pixels"),
        # Far above Pillow's own limit: its DecompressionBombError must become a 413.
        ("bomb.png", png_header_only(30000, 30000), 413, "'bomb.png'"),
    ],
)  # fmt: skip
def test_bad_files_are_refused_naming_the_file(
    rgb_service: Service, name: str, data: bytes, status: int, detail: str
) -> None:
    good = ("ok.png", encode(noisy_image(32, 32, 0, seed=0), "PNG"), "image/png")
    r = httpx.post(
        f"{rgb_service.url}/v1/predict/images",
        files=_files([good, (name, data, "application/octet-stream")]),
    )
    assert r.status_code == status, r.text
    assert detail in r.json()["detail"]


@pytest.mark.parametrize(
    ("kwargs", "status", "detail"),
    [
        ({"files": _files([("a.png", b"x", "image/png")] * 5)}, 413, "MAX_IMAGES_PER_REQUEST=4"),
        ({"json": {"images": [{"data": "AAAA"}] * 5}}, 413, "MAX_IMAGES_PER_REQUEST=4"),
        ({"json": {"images": [{"name": "x", "data": "not base64!"}]}}, 422, "'x': 'data' is not"),
        ({"json": {"images": []}}, 422, "no images"),
        ({"json": {"pictures": []}}, 422, "needs 'images'"),
        ({"json": {"images": [{"data": "AAAA"}], "top_k": 0}}, 422, "top_k must be"),
        ({"content": b"a,b", "headers": {"content-type": "text/csv"}}, 415, "multipart/form-data"),
        ({"json": {"images": [{"data": "AAAA"}], "version": "99"}}, 404, "no version '99'"),
        (
            {"files": _files([("a.png", b"x", "image/png")]), "data": {"colour": "red"}},
            422,
            "unexpected multipart part 'colour'",
        ),
        (
            {
                "content": b'--b\r\nContent-Disposition: form-data; name="files"\r\n\r\nabc',
                "headers": {"content-type": "multipart/form-data; boundary=b"},
            },
            422,
            "cut short",
        ),
        ({"content": b"", "headers": {"content-type": "multipart/form-data"}}, 422, "boundary"),
    ],
)
def test_bad_requests_get_a_4xx(
    rgb_service: Service, kwargs: dict[str, object], status: int, detail: str
) -> None:
    r = httpx.post(f"{rgb_service.url}/v1/predict/images", timeout=30, **kwargs)
    assert r.status_code == status, r.text
    assert detail in r.json()["detail"]


def test_model_info_and_invocations_use_the_models_shape(rgb_service: Service) -> None:
    info = httpx.get(f"{rgb_service.url}/v1/model").json()
    assert info["input_shape"] == [3, 32, 32]
    assert info["preprocessing"]["image_size"] == 32 and info["preprocessing"]["channels"] == 3
    x = np.random.default_rng(5).random((4, 3, 32, 32), dtype=np.float32)
    r = httpx.post(f"{rgb_service.url}/invocations", json={"inputs": x.tolist()})
    assert r.status_code == 200, r.text
    with torch.no_grad():
        want = ColourNet()(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(np.asarray(r.json()["predictions"]), want, rtol=1e-4, atol=1e-5)
    r = httpx.post(f"{rgb_service.url}/invocations", json={"inputs": [[[0.0] * 8] * 8]})
    assert r.status_code == 422 and "[3, 32, 32]" in r.json()["detail"]


def test_digits_model_without_preprocessing_takes_grayscale_files(
    service: Service, digits: Digits
) -> None:
    """The 1-channel 8x8 digits model (no `preprocessing` in its metadata): its signature's
    shape decides; an 8x8 PNG of a digit and an RGB 64x64 upscale of it both work."""
    sent = []
    for i in range(4):
        pixels = (digits.x_test[i, 0] * 255).round().astype(np.uint8)
        small = Image.fromarray(pixels, "L")
        big = small.convert("RGB").resize((64, 64), Image.Resampling.NEAREST)
        sent += [(f"d{i}.png", encode(small, "PNG"), "image/png"),
                 (f"d{i}-big.jpg", encode(big, "JPEG"), "image/jpeg")]  # fmt: skip
    r = httpx.post(f"{service.url}/v1/predict/images", files=_files(sent), timeout=30)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"]["name"] == "image-classifier"
    tensor = _tensor_answer(service.url, [contract_pixels(d, 8, 1) for _, d, _ in sent])
    _assert_same(body, tensor, [name for name, _, _ in sent])
    # the 8x8 PNGs are the held-out digits themselves: same classes as the digits' tensors
    originals = _tensor_answer(service.url, list(digits.x_test[:4]))
    assert [p["label"] for p in body["predictions"][::2]] == originals["predictions"]
