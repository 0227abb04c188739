"""Benchmark: training throughput on real RGB images, and the training worker's peak memory.

    make bench-images     (or: PYTHONPATH=src python benchmarks/bench_images.py)

1. Images/s of `fit` (the service's path: batches read from the snapshot on disk through the
   DataLoader, evaluation in batches) against a plain hand-written PyTorch loop over the
   same split already in memory as tensors, with the same network, AdamW + one-cycle,
   batch size and per-epoch evaluation, for `small_cnn` and `resnet18` on `shapes` at
   32x32 RGB. Runs alternate (plain, service, plain, service) and the best of each counts.
2. Peak resident memory (RSS) of the training worker process while the real service trains
   one epoch of `small_cnn` on a 50,000-image 64x64 RGB `shapes` dataset: /proc/<pid>/status
   of the service's child processes, sampled every 0.2 s, plus the worker's VmHWM.

Environment: BENCH_IMAGES (shapes images for part 1, default 2000; 0 skips part 1),
BENCH_RSS_IMAGES (default 50000; 0 skips part 2), TORCH_THREADS (default 1, the service's
default).
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
from bench_training import free_port, wait_http  # noqa: E402

THREADS = int(os.environ.get("TORCH_THREADS", "1"))


def plain_loop(dataset, params) -> float:  # type: ignore[no-untyped-def]
    """The reference: tensors in memory, a hand-written loop. Returns images/s."""
    import torch
    from torch import nn

    from training_service.networks.building import build_network

    train, test = dataset.split("train"), dataset.split("test")
    x = torch.from_numpy(train.read(np.arange(len(train))))
    y = torch.from_numpy(train.labels)
    x_test = torch.from_numpy(test.read(np.arange(len(test))))
    y_test = torch.from_numpy(test.labels)
    info = dataset.info
    model = build_network(
        params.architecture, in_channels=info.channels, image_size=info.image_size,
        n_classes=len(dataset.classes), mean=info.mean, std=info.std, seed=params.seed,
    )  # fmt: skip
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=params.learning_rate, weight_decay=params.weight_decay
    )
    steps = math.ceil(len(y) / params.batch_size)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=params.learning_rate, epochs=params.epochs, steps_per_epoch=steps
    )
    generator = torch.Generator().manual_seed(params.seed)
    started = time.perf_counter()
    for _ in range(params.epochs):
        model.train()
        order = torch.randperm(len(y), generator=generator)
        for start in range(0, len(y), params.batch_size):
            index = order[start : start + params.batch_size]
            optimizer.zero_grad(set_to_none=True)
            loss = nn.functional.cross_entropy(model(x[index]), y[index])
            loss.backward()
            optimizer.step()
            scheduler.step()
        model.eval()
        with torch.no_grad():
            for start in range(0, len(y_test), 256):
                model(x_test[start : start + 256]).argmax(1)
    return len(y) * params.epochs / (time.perf_counter() - started)


def bench_throughput(workdir: Path) -> list[str]:
    import torch

    from training_service.data import build_dataset
    from training_service.params import TrainingParams
    from training_service.train import fit

    torch.set_num_threads(THREADS)
    count = int(os.environ.get("BENCH_IMAGES", "2000"))
    dataset = build_dataset(
        "shapes", data_dir=workdir / "throughput", count=count, image_size=32, seed=1
    )
    rows = []
    for architecture, epochs in (("small_cnn", 2), ("resnet18", 1)):
        params = TrainingParams(
            architecture=architecture, epochs=epochs, batch_size=64, learning_rate=0.002
        )
        plain, service = [], []
        for _ in range(2):
            plain.append(plain_loop(dataset, params))
            result = fit(dataset, params)
            service.append(dataset.info.n_train * epochs / result.train_seconds)
        best_plain, best_service = max(plain), max(service)
        rows.append(
            f"| {architecture} | {dataset.info.n_train} x {epochs} | {best_plain:.0f} "
            f"| {best_service:.0f} | {best_service / best_plain:.2f} |"
        )
    return [
        "| network | train images x epochs | plain loop (img/s) | service fit (img/s) "
        "| service / plain |",
        "|---|---:|---:|---:|---:|",
        *rows,
    ]


def rss_kib(pid: int) -> dict[str, int]:
    values = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0])
    return values


def children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as file:
            return [int(p) for p in file.read().split()]
    except FileNotFoundError:
        return []


def bench_rss(workdir: Path, tracking_uri: str) -> list[str]:
    images = int(os.environ.get("BENCH_RSS_IMAGES", "50000"))
    port = free_port()
    env = {
        **os.environ, "PYTHONPATH": str(ROOT / "src"), "ENVIRONMENT": "local",
        "MLFLOW_TRACKING_URI": tracking_uri, "DATA_DIR": str(workdir / "rss"),
        "PORT": str(port), "EXPERIMENT": "benchmark-rss", "MAX_DATASET_IMAGES": "200000",
        "TORCH_THREADS": str(THREADS),
    }  # fmt: skip
    log = (workdir / "service-rss.log").open("wb")
    service = subprocess.Popen([sys.executable, "-m", "training_service"], env=env, stdout=log,
                               stderr=log)  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/health")
        with httpx.Client(base_url=url, timeout=3600) as client:
            started = time.perf_counter()
            dataset = client.post(
                "/v1/datasets", json={"source": "shapes", "count": images, "image_size": 64}
            )
            dataset.raise_for_status()
            build_seconds = time.perf_counter() - started
            body = {"dataset_id": dataset.json()["dataset_id"], "epochs": 1, "register": False}
            job_id = client.post("/v1/train", json=body).json()["job_id"]
            peak, hwm, started = 0, 0, time.perf_counter()
            while (job := client.get(f"/v1/jobs/{job_id}").json())["status"] in {
                "queued",
                "running",
            }:
                for child in children(service.pid):
                    try:
                        memory = rss_kib(child)
                    except FileNotFoundError:
                        continue
                    peak = max(peak, memory.get("VmRSS", 0))
                    hwm = max(hwm, memory.get("VmHWM", 0))
                time.sleep(0.2)
            seconds = time.perf_counter() - started
        return [
            "| images (64x64 RGB) | dataset build (s) | job (s) | status | worker peak RSS "
            "sampled (MiB) | worker VmHWM (MiB) |",
            "|---:|---:|---:|---|---:|---:|",
            f"| {images} | {build_seconds:.0f} | {seconds:.0f} | {job['status']} "
            f"| {peak / 1024:.0f} | {hwm / 1024:.0f} |",
        ]
    finally:
        service.terminate()
        service.wait(120)
        log.close()


def main() -> None:
    workdir = Path(tempfile.mkdtemp(prefix="bench-images-"))
    port = free_port()
    mlflow_server = subprocess.Popen(
        [shutil.which("mlflow") or "mlflow", "server", "--backend-store-uri",
         f"sqlite:///{workdir}/mlflow.db", "--artifacts-destination", str(workdir / "artifacts"),
         "--serve-artifacts", "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    tracking_uri = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{tracking_uri}/health")
        load = os.getloadavg()[0]
        print(f"## Training throughput, shapes 32x32 RGB (cores: {os.cpu_count()}, "
              f"torch threads: {THREADS}, load: {load:.1f})\n")  # fmt: skip
        if int(os.environ.get("BENCH_IMAGES", "2000")) > 0:
            print("\n".join(bench_throughput(workdir)), flush=True)
        if int(os.environ.get("BENCH_RSS_IMAGES", "50000")) > 0:
            print("\n## Training worker memory, one epoch of small_cnn on shapes 64x64 RGB\n")
            print("\n".join(bench_rss(workdir, tracking_uri)), flush=True)
        print(f"\nload average after the run: {os.getloadavg()[0]:.1f}")
    finally:
        mlflow_server.terminate()
        mlflow_server.wait(60)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
