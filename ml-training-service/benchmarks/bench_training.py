"""Benchmark: training time and accuracy on digits, and /health latency while a job trains.

    make bench            (or: PYTHONPATH=src python benchmarks/bench_training.py)

Starts its own `mlflow server` (SQLite, temporary directory) unless MLFLOW_TRACKING_URI is
set, then prints markdown tables:
1. `fit` with the default request body (10 epochs, batch 64, lr 0.01, seed 42) on digits,
   with 1 and 2 torch threads: training-loop wall time and test accuracy;
2. the service with each job executor (process, thread): /health latency idle and while the
   default job trains, and the job's end-to-end time (queued -> registered version).
"""

from __future__ import annotations

import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"timed out waiting for {url}")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def bench_fit() -> list[str]:
    import torch

    from training_service.data import build_dataset
    from training_service.params import TrainingParams
    from training_service.train import fit

    dataset = build_dataset("digits", data_dir=Path(tempfile.gettempdir()))
    rows = []
    for threads in (1, 2):
        torch.set_num_threads(threads)
        result = fit(dataset, TrainingParams())
        rows.append(
            f"| {threads} | {result.train_seconds:.2f} | {result.final.test_accuracy:.4f} |"
        )
    return [
        "| torch threads | training wall time (s) | test accuracy |",
        "|---:|---:|---:|",
        *rows,
    ]


def health_latencies(client: httpx.Client, keep_going, limit: int = 2000) -> list[float]:  # type: ignore[no-untyped-def]
    samples: list[float] = []
    while keep_going() and len(samples) < limit:
        started = time.perf_counter()
        client.get("/health")
        samples.append((time.perf_counter() - started) * 1000)
        time.sleep(0.01)
    return samples


def bench_service(executor: str, tracking_uri: str, workdir: Path) -> str:
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT / "src"),
        "ENVIRONMENT": "local",
        "MLFLOW_TRACKING_URI": tracking_uri,
        "DATA_DIR": str(workdir / f"data-{executor}"),
        "PORT": str(port),
        "JOB_EXECUTOR": executor,
        "EXPERIMENT": "benchmark",
        "MODEL_NAME": "image-classifier-benchmark",
    }
    log = (workdir / f"service-{executor}.log").open("wb")
    service = subprocess.Popen(
        [sys.executable, "-m", "training_service"], env=env, stdout=log, stderr=log
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/health")
        with httpx.Client(base_url=url, timeout=30) as client:
            idle_end = time.monotonic() + 3
            idle = health_latencies(client, lambda: time.monotonic() < idle_end, limit=200)
            if executor == "process":
                time.sleep(20)  # let the worker process finish importing torch and MLflow
            job_id = client.post("/v1/train", json={}).json()["job_id"]

            def state() -> dict:
                job: dict = client.get(f"/v1/jobs/{job_id}").json()
                return job

            while state()["status"] == "queued":
                time.sleep(0.05)
            busy = health_latencies(client, lambda: state()["status"] == "running")
            job = state()
        created = job["created_at"]
        from datetime import datetime

        seconds = (
            datetime.fromisoformat(job["finished_at"]) - datetime.fromisoformat(created)
        ).total_seconds()
        accuracy = (job["metrics"] or {}).get("test_accuracy", float("nan"))
        return (
            f"| {executor} | {statistics.median(idle):.1f} | {percentile(idle, 0.99):.1f} "
            f"| {statistics.median(busy):.1f} | {percentile(busy, 0.99):.1f} "
            f"| {max(busy):.1f} | {len(busy)} | {seconds:.1f} | {accuracy:.4f} | {job['status']} |"
        )
    finally:
        service.terminate()
        service.wait(60)
        log.close()


def main() -> None:
    workdir = Path(tempfile.mkdtemp(prefix="bench-training-"))
    mlflow_server = None
    tracking_uri = os.environ.get("MLFLOW_TRACKING_URI")
    if not tracking_uri:
        port = free_port()
        mlflow_server = subprocess.Popen(
            [
                shutil.which("mlflow") or "mlflow",
                "server",
                "--backend-store-uri",
                f"sqlite:///{workdir}/mlflow.db",
                "--artifacts-destination",
                str(workdir / "artifacts"),
                "--serve-artifacts",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],  # fmt: skip
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        tracking_uri = f"http://127.0.0.1:{port}"
        wait_http(f"{tracking_uri}/health")
    try:
        print(f"## Training on digits (cores: {os.cpu_count()}, load: {os.getloadavg()[0]:.1f})\n")
        print("\n".join(bench_fit()))
        print("\n## /health latency (ms) and job time, default POST /v1/train body\n")
        print(
            "| executor | idle p50 | idle p99 | training p50 | training p99 | training max "
            "| samples | job end-to-end (s) | test accuracy | status |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
        for executor in ("process", "thread"):
            print(bench_service(executor, tracking_uri, workdir), flush=True)
        print(f"\nload average after the run: {os.getloadavg()[0]:.1f}")
    finally:
        if mlflow_server is not None:
            mlflow_server.terminate()
            mlflow_server.wait(60)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
