"""Benchmark: predictions from image files, this service against `mlflow models serve`.

One registered 32x32 RGB model (`image_models.py`: ml-training-service's on its `shapes` data
when `--training-service DIR` is given and its CLI trains it, else the bench's own) is served
by this service and by `mlflow models serve --env-manager local`, each pinned to core 0 with
one worker; `wrk` on core 1 sends byte-identical bodies in turn, `--repeat` rounds:

- PNG uploads, batch 1: this service's `POST /v1/predict/images` with one multipart `files`
  part; mlflow gets the same image as the decoded tensor its signature takes (JSON `inputs`).
- base64 batches of `--batch` images: a JSON `images` list against the same decoded tensors.

Before any timing the held-out images go to both (all in one request, and one per request):
labels must be identical and probabilities within 1e-4, or the bench stops. Prints markdown
and writes it to `--out`.

    PATH=<venv>/bin:$PATH PYTHONPATH=src nice -n 10 python benchmarks/bench_images.py \\
        [--training-service ../ml-training-service --training-python <its venv>/bin/python]
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import platform
import shutil
import sys
import tempfile
from pathlib import Path

import httpx
import numpy as np
from image_models import ImageModel, own_model, training_service_model
from PIL import Image
from processes import free_port, pinned, process, wait_server_core_idle
from report import table
from wrk_load import Run, median_run, wrk

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
BOUNDARY = "bench-images-boundary"
MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"
TOLERANCE = 1e-4


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=8, help="seconds per wrk run")
    parser.add_argument("--repeat", type=int, default=2, help="runs per setting (median)")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--batch", type=int, default=32, help="images per base64 request")
    parser.add_argument("--architecture", default="small_cnn", choices=["small_cnn", "resnet18"])
    parser.add_argument("--training-service", type=Path, default=None, metavar="DIR")
    parser.add_argument("--training-python", type=Path, default=None, metavar="PYTHON")
    parser.add_argument("--idle-timeout", type=float, default=30)
    parser.add_argument("--out", type=Path, default=HERE / "results_images.md")
    return parser.parse_args()


def png(image: np.ndarray) -> bytes:
    out = io.BytesIO()
    pixels = image.transpose(1, 2, 0)
    Image.fromarray(pixels[..., 0] if pixels.shape[2] == 1 else pixels).save(out, format="PNG")
    return out.getvalue()


def multipart(files: list[tuple[str, bytes]]) -> bytes:
    parts = [
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="files"; filename="{name}"\r\n'
        f"Content-Type: image/png\r\n\r\n".encode()
        + data
        + b"\r\n"
        for name, data in files
    ]
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


def base64_json(files: list[tuple[str, bytes]], top_k: int | None = None) -> bytes:
    images = [{"name": n, "data": base64.b64encode(d).decode()} for n, d in files]
    return json.dumps({"images": images, **({"top_k": top_k} if top_k else {})}).encode()


def tensors_json(images: np.ndarray) -> bytes:
    """The decoded images as the model's float input: uint8 / 255, (N, C, H, W)."""
    return json.dumps({"inputs": (images.astype(np.float32) / 255).tolist()}).encode()


def ours_probabilities(body: dict, classes: list[str]) -> tuple[list[str], np.ndarray]:  # type: ignore[type-arg]
    probs = np.zeros((len(body["predictions"]), len(classes)))
    for row, p in zip(probs, body["predictions"], strict=True):
        for t in p["top_k"]:
            row[classes.index(t["label"])] = t["probability"]
    return [p["label"] for p in body["predictions"]], probs


def check_agreement(
    ours: str, theirs: str, model: ImageModel, files: list[tuple[str, bytes]]
) -> str:
    """Labels identical and probabilities within TOLERANCE, or SystemExit."""
    k = len(model.classes)
    r = httpx.post(theirs, content=tensors_json(model.images), timeout=120,
                   headers={"content-type": "application/json"})  # fmt: skip
    r.raise_for_status()
    logits = np.asarray(r.json()["predictions"], np.float64)
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    want_labels = [model.classes[i] for i in logits.argmax(axis=1)]
    want = e / e.sum(axis=1, keepdims=True)
    answers = {
        "multipart, one request": httpx.post(
            f"{ours}?top_k={k}", content=multipart(files), timeout=120,
            headers={"content-type": MULTIPART}).json(),
        "base64, one request": httpx.post(
            ours, content=base64_json(files, k), timeout=120,
            headers={"content-type": "application/json"}).json(),
        "multipart, one per request": {"predictions": [
            httpx.post(f"{ours}?top_k={k}", content=multipart([f]), timeout=60,
                       headers={"content-type": MULTIPART}).json()["predictions"][0]
            for f in files]},
    }  # fmt: skip
    worst = 0.0
    for how, body in answers.items():
        if "predictions" not in body:
            sys.exit(f"this service refused the images ({how}): {body}")
        labels, probs = ours_probabilities(body, model.classes)
        if labels != want_labels:
            sys.exit(f"answers disagree ({how}): {labels[:8]} vs mlflow {want_labels[:8]}")
        worst = max(worst, float(np.abs(probs - want).max()))
    if worst > TOLERANCE:
        sys.exit(f"probabilities differ by {worst:.2e} (> {TOLERANCE:g})")
    accuracy = np.mean([a == b for a, b in zip(want_labels, model.labels, strict=True)])
    return (f"Answers agree: {len(files)} held-out images as PNG (multipart, all at once and one "
            f"per request) and base64 to this service, as decoded tensors to mlflow models "
            f"serve: identical labels, probabilities within {worst:.1e} (limit {TOLERANCE:g}); "
            f"accuracy on them {accuracy:.3f}.")  # fmt: skip


def main() -> None:
    args = parse_args()
    work = Path(tempfile.mkdtemp(prefix="serving-bench-images-"))
    env = {"PATH": f"{BIN}:{os.environ.get('PATH', '')}",
           "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}  # fmt: skip
    mlflow_port, ours_port, theirs_port = (free_port() for _ in range(3))
    tracking = f"http://127.0.0.1:{mlflow_port}"
    load_before = os.getloadavg()
    with process(
        [str(BIN / "mlflow"), "server", "--backend-store-uri", f"sqlite:///{work}/mlflow.db",
         "--artifacts-destination", str(work / "artifacts"), "--serve-artifacts",
         "--host", "127.0.0.1", "--port", str(mlflow_port), "--workers", "1"],
        env, f"{tracking}/health", work / "mlflow.log",
    ):  # fmt: skip
        model: ImageModel | str = "no --training-service given"
        if args.training_service:
            python = args.training_python or args.training_service / ".venv" / "bin" / "python"
            model = training_service_model(
                args.training_service, python, tracking, work, args.architecture
            )
        if isinstance(model, str):
            print(f"training service model not used: {model}", file=sys.stderr)
            model = own_model(tracking, args.architecture, 32)
        provenance = f"Model: {model.name} version {model.version}, {model.provenance}."
        print(provenance, file=sys.stderr)
        files = [(f"img{i}.png", png(img)) for i, img in enumerate(model.images)]
        batch = [files[i % len(files)] for i in range(args.batch)]
        batch_images = model.images[[i % len(files) for i in range(args.batch)]]
        bodies = {}
        for key, content in {
            "ours-png": multipart(files[:1]), "theirs-png": tensors_json(model.images[:1]),
            "ours-b64": base64_json(batch), "theirs-b64": tensors_json(batch_images),
        }.items():  # fmt: skip
            bodies[key] = work / f"{key}.body"
            bodies[key].write_bytes(content)
        ours = f"http://127.0.0.1:{ours_port}/v1/predict/images"
        theirs = f"http://127.0.0.1:{theirs_port}/invocations"
        ours_cmd = [sys.executable, "-m", "serving_service"]
        ours_env = {**env, "MLFLOW_TRACKING_URI": tracking, "PORT": str(ours_port),
                    "MODEL_NAME": model.name, "ENVIRONMENT": "local",
                    "LOG_LEVEL": "warning"}  # fmt: skip
        theirs_cmd = [str(BIN / "mlflow"), "models", "serve", "-m",
                      f"models:/{model.name}/{model.version}", "--env-manager", "local",
                      "--host", "127.0.0.1", "-p", str(theirs_port), "-w", "1"]  # fmt: skip
        with (
            process(pinned("0", ours_cmd), ours_env, f"http://127.0.0.1:{ours_port}/ready",
                    work / "ours.log"),
            process(pinned("0", theirs_cmd), {**env, "MLFLOW_TRACKING_URI": tracking},
                    f"http://127.0.0.1:{theirs_port}/ping", work / "theirs.log"),
        ):  # fmt: skip
            agreement = check_agreement(ours, theirs, model, files)
            print(agreement, file=sys.stderr)
            b, js = args.batch, "application/json"
            settings = [
                ("serving-service /v1/predict/images (PNG multipart)", ours, "ours-png", 1,
                 MULTIPART),
                ("mlflow models serve (decoded tensor)", theirs, "theirs-png", 1, js),
                ("serving-service /v1/predict/images (base64 JSON)", ours, "ours-b64", b, js),
                ("mlflow models serve (decoded tensors)", theirs, "theirs-b64", b, js),
            ]  # fmt: skip
            for label, url, key, b, ctype in settings:  # warm-up
                wrk(url, bodies[key], 4, 2, label, b, ctype)
            rounds: dict[str, list[Run]] = {s[0]: [] for s in settings}
            for _ in range(args.repeat):
                for label, url, key, b, ctype in settings:
                    wait_server_core_idle(args.idle_timeout)
                    run = wrk(url, bodies[key], args.concurrency, args.duration, label, b, ctype)
                    print(table([run]).splitlines()[-1], file=sys.stderr)
                    rounds[label].append(run)
    runs = [median_run(r) for r in rounds.values()]
    text = report(args, runs, provenance, agreement, load_before, os.getloadavg())
    print(text)
    args.out.write_text(f"# Image benchmark results\n\n{text}\n")
    shutil.rmtree(work, ignore_errors=True)


def report(args: argparse.Namespace, runs: list[Run], provenance: str, agreement: str,
           before: tuple[float, ...], after: tuple[float, ...]) -> str:  # fmt: skip
    png_ratio = runs[0].images_per_s / runs[1].images_per_s
    b64_ratio = runs[2].images_per_s / runs[3].images_per_s
    return "\n\n".join([
        f"Hardware: {os.cpu_count()} cores, {platform.system()} {platform.release()}; both "
        f"servers pinned to core 0 with 1 worker, wrk (1 thread) pinned to core 1; "
        f"{args.duration} s per run, median of {args.repeat}, servers measured in turn. Load "
        f"average (1 min) before/after: {before[0]:.1f}/{after[0]:.1f}.",
        f"Command: `{' '.join(['python', 'benchmarks/bench_images.py', *sys.argv[1:]])}`",
        provenance, agreement, table(runs),
        f"Images/s, this service over mlflow models serve at concurrency {args.concurrency}: "
        f"PNG uploads (batch 1) {png_ratio:.1f}x, base64 batches of {args.batch} "
        f"{b64_ratio:.1f}x.",
    ])  # fmt: skip


if __name__ == "__main__":
    main()
