"""Bring your own data and model: the root README's steps, from image files to predictions.

Exactly what the README section "Bring your own data and model" tells a new user to do, on
the embedded stack (the session's, shared with the other embedded tests):

1. a folder of image files, one sub-folder per class. Here they are PNG files made from the
   training service's own generated `shapes` dataset (48x48 RGB, drawn by its generator in
   the training venv and written with Pillow): its train split becomes the user's folder, its
   test split the held-out files the model never sees;
2. zip it and upload it (`POST /v1/datasets`, multipart `file`, at 32x32 RGB);
3. trigger `mlflow_orchestration_pipeline` with `dataset_id` and `architecture=resnet8`;
4. run `model_management`, which promotes the new version to `production`;
5. predict from the held-out PNG files (`POST /v1/predict/images`, multipart `files`):
   accuracy >= 0.9.

Every call that needs a token sends the stack's API token, MLflow's REST API its basic-auth
login, Airflow the operator login.
"""

from __future__ import annotations

import io
import os
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import httpx

from scripts.embedded.airflow_api import AirflowClient
from scripts.embedded.config import ROOT
from scripts.embedded.demo import MANAGEMENT, MODEL_NAME, PIPELINE, run_dag, wait_until_served
from scripts.embedded.stack import Stack

SOURCE_SIZE = 48  # the files' own size; the model is trained and served at 32
IMAGE_SIZE = 32
SHAPES_COUNT = 4500
HELD_OUT_FRACTION = 0.12  # 3,960 files to upload, 540 held out
# ResNet-8 (He et al. 2016) on ~3,200 training images of 32x32 shapes: >= 0.98 held-out in
# about two minutes of CPU (the training README's networks section).
TRAINING = {
    "architecture": "resnet8",
    "epochs": 8,
    "learning_rate": 0.01,
    "batch_size": 32,
}
FILES_PER_REQUEST = 64  # serving's MAX_IMAGES_PER_REQUEST


def token_header(stack: Stack) -> dict[str, str]:
    """The embedded stack's API token (train and predict scopes) as a Bearer header."""
    return {"Authorization": f"Bearer {stack.cfg.secret('api_token')}"}


# Run by the training service's own venv: the files are drawn by its `shapes` generator and
# written as PNGs straight from the stored uint8 pixels (no JSON round trip of 4,500 images).
_RENDER_PNGS = """
import sys, tempfile
from pathlib import Path
from PIL import Image
from training_service.data import build_dataset
folder = Path(sys.argv[1])
count, size, test_fraction = int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
with tempfile.TemporaryDirectory() as data_dir:
    dataset = build_dataset(
        "shapes", data_dir=Path(data_dir), count=count, image_size=size, seed=7,
        test_fraction=test_fraction,
    )
    for split in ("train", "test"):
        images = dataset.split(split)
        pixels = images.read_uint8(list(range(len(images))))
        for n, (image, label) in enumerate(zip(pixels, images.labels)):
            path = folder / split / dataset.classes[int(label)] / f"{split}-{n:04d}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image.transpose(1, 2, 0), "RGB").save(path)
"""


def write_png_folder(stack: Stack, folder: Path) -> dict[str, list[Path]]:
    """`folder/<split>/<class>/<n>.png` from a generated shapes dataset's two splits."""
    python = stack.cfg.venvs / "ml-training-service" / "bin" / "python"
    subprocess.run(
        [
            str(python),
            "-c",
            _RENDER_PNGS,
            str(folder),
            str(SHAPES_COUNT),
            str(SOURCE_SIZE),
            str(HELD_OUT_FRACTION),
        ],
        check=True,
        timeout=300,
        # The package from this checkout: `make test-services` may have left the venv's
        # editable install pointing at a removed subtree split.
        env={**os.environ, "PYTHONPATH": str(ROOT / "ml-training-service" / "src")},
    )
    return {split: sorted((folder / split).rglob("*.png")) for split in ("train", "test")}


def zip_folder(folder: Path) -> bytes:
    """`zip -r photos.zip photos`: `<top>/<class>/<image>` members."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*.png")):
            archive.write(path, path.relative_to(folder.parent).as_posix())
    return buffer.getvalue()


def predict_files(stack: Stack, paths: list[Path]) -> list[dict[str, Any]]:
    """`curl -F files=@a.png -F files=@b.png .../v1/predict/images`, 64 files at a time."""
    predictions: list[dict[str, Any]] = []
    for start in range(0, len(paths), FILES_PER_REQUEST):
        chunk = paths[start : start + FILES_PER_REQUEST]
        answer = httpx.post(
            f"{stack.cfg.serving_url}/v1/predict/images",
            files=[("files", (p.name, p.read_bytes(), "image/png")) for p in chunk],
            params={"top_k": 2},
            headers=token_header(stack),
            timeout=120,
        )
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert [p["name"] for p in body["predictions"]] == [p.name for p in chunk]
        predictions += [{**p, "model": body["model"]} for p in body["predictions"]]
    return predictions


def test_a_folder_of_images_becomes_a_served_resnet8(
    stack: Stack, airflow: AirflowClient, tmp_path: Path
) -> None:
    files = write_png_folder(stack, tmp_path / "photos")
    assert len(files["train"]) == 3960 and len(files["test"]) == 540
    # The user's folder: <class>/<image>.png, here the train split's files.
    archive = zip_folder(tmp_path / "photos" / "train")

    uploaded = httpx.post(
        f"{stack.cfg.training_url}/v1/datasets",
        files={"file": ("photos.zip", archive, "application/zip")},
        data={"image_size": str(IMAGE_SIZE), "channels": "3"},
        headers=token_header(stack),
        timeout=300,
    )
    assert uploaded.status_code == 201, uploaded.text
    dataset = uploaded.json()
    assert dataset["source"] == "archive"
    assert (dataset["image_size"], dataset["channels"]) == (IMAGE_SIZE, 3)
    assert sorted(dataset["classes"]) == sorted(
        p.name for p in (tmp_path / "photos/train").iterdir()
    )
    assert sum(dataset["class_counts"].values()) == 3960

    pipeline = run_dag(
        airflow, PIPELINE, timeout=1500, conf={"dataset_id": dataset["dataset_id"], **TRAINING}
    )
    assert pipeline.state == "success"
    jobs = httpx.get(f"{stack.cfg.training_url}/v1/jobs", timeout=10).json()["jobs"]
    job = max(jobs, key=lambda j: j["created_at"])
    assert job["dataset_id"] == dataset["dataset_id"]
    assert job["params"]["architecture"] == "resnet8"
    version = str(job["model_version"])

    management = run_dag(airflow, MANAGEMENT, timeout=300)
    assert management.state == "success"
    aliases = httpx.get(
        f"{stack.cfg.mlflow_url}/api/2.0/mlflow/registered-models/get",
        params={"name": MODEL_NAME},
        headers=stack.cfg.mlflow_auth_header(),
        timeout=10,
    ).json()["registered_model"]["aliases"]
    assert {a["alias"]: a["version"] for a in aliases}.get("production") == version
    served = wait_until_served(stack.cfg, version, timeout=120)
    assert served["preprocessing"]["image_size"] == IMAGE_SIZE

    # The held-out files, as the user has them: never uploaded, never trained on.
    held_out = files["test"]
    predictions = predict_files(stack, held_out)
    assert {p["model"]["version"] for p in predictions} == {version}
    hits = sum(
        p["label"] == path.parent.name for p, path in zip(predictions, held_out, strict=True)
    )
    accuracy = hits / len(held_out)
    assert accuracy >= 0.9, f"held-out accuracy {accuracy:.3f} on {len(held_out)} PNG files"
