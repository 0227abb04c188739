"""Benchmark: does a heavy model stall the service? `/health` latency under ResNet-18 load.

A ResNet-18 (plain torch, `image_models.resnet18`, 11M parameters, untrained: it only has to
be heavy) at 64x64 RGB is registered with the contract's metadata and served by this service
pinned to core 0. `wrk` on core 1 uploads one 64x64 PNG per request to
`POST /v1/predict/images` at `--concurrency` (16) while this process asks `GET /health` every
`--interval` seconds over a kept-alive connection and records each latency. Two runs: the
service as configured (batches the model cannot score within `SCORING_INLINE_MS` go to the
scoring thread), and `SCORING_INLINE_MS=1000000`, every forward pass on the event loop (the
behaviour before the scoring thread), for comparison. Target: `/health` p99 under 50 ms.

    PATH=<venv>/bin:$PATH PYTHONPATH=src nice -n 10 python benchmarks/bench_heavy.py
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
from bench_images import MULTIPART, multipart, png
from image_models import draw_shapes, own_model
from processes import free_port, pinned, process
from wrk_load import Run, wrk

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
MODES = {
    "scoring thread (default SCORING_INLINE_MS=2)": {},
    "all on the event loop (SCORING_INLINE_MS=1000000)": {"SCORING_INLINE_MS": "1000000"},
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=20, help="seconds of load per mode")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--interval", type=float, default=0.02, help="seconds between probes")
    parser.add_argument("--out", type=Path, default=HERE / "results_heavy.md")
    return parser.parse_args()


def probe_health(url: str, interval: float, stop: threading.Event) -> list[float]:
    """Latency in ms of each `GET /health` until `stop` is set."""
    latencies = []
    with httpx.Client(timeout=30) as client:
        while not stop.is_set():
            start = time.perf_counter()
            client.get(url).raise_for_status()
            latencies.append((time.perf_counter() - start) * 1000)
            time.sleep(interval)
    return latencies


def measure(url: str, health: str, body: Path, args: argparse.Namespace) -> tuple[Run, list[float]]:
    """wrk's run of the load, and the /health latencies probed meanwhile."""
    result: list[Run] = []

    def load_it() -> None:
        label = "ResNet-18 64x64 PNG"
        result.append(wrk(url, body, args.concurrency, args.duration, label, 1, MULTIPART))

    load = threading.Thread(target=load_it)
    stop = threading.Event()
    load.start()
    time.sleep(1)  # the load is on before the first probe
    timer = threading.Timer(args.duration - 2, stop.set)
    timer.start()
    latencies = probe_health(health, args.interval, stop)
    load.join()
    return result[0], latencies


def main() -> None:
    args = parse_args()
    work = Path(tempfile.mkdtemp(prefix="serving-bench-heavy-"))
    env = {"PATH": f"{BIN}:{os.environ.get('PATH', '')}",
           "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}  # fmt: skip
    mlflow_port = free_port()
    tracking = f"http://127.0.0.1:{mlflow_port}"
    rows = []
    with process(
        [str(BIN / "mlflow"), "server", "--backend-store-uri", f"sqlite:///{work}/mlflow.db",
         "--artifacts-destination", str(work / "artifacts"), "--serve-artifacts",
         "--host", "127.0.0.1", "--port", str(mlflow_port), "--workers", "1"],
        env, f"{tracking}/health", work / "mlflow.log",
    ):  # fmt: skip
        model = own_model(tracking, "resnet18", 64, name="bench-resnet18")
        image, _ = draw_shapes(1, 64, seed=1)
        body = work / "png.body"
        body.write_bytes(multipart([("shape.png", png(image[0]))]))
        for mode, extra in MODES.items():
            port = free_port()
            base = f"http://127.0.0.1:{port}"
            cmd = pinned("0", [sys.executable, "-m", "serving_service"])
            service_env = {**env, "MLFLOW_TRACKING_URI": tracking, "PORT": str(port),
                           "MODEL_NAME": model.name, "ENVIRONMENT": "local",
                           "LOG_LEVEL": "warning", **extra}  # fmt: skip
            with process(cmd, service_env, f"{base}/ready", work / "service.log"):
                url = f"{base}/v1/predict/images"
                wrk(url, body, 4, 2, "warm-up", 1, MULTIPART)
                run, latencies = measure(url, f"{base}/health", body, args)
            lat = np.asarray(latencies)
            rows.append(
                f"| {mode} | {run.images_per_s:,.0f} | {run.p99_ms:.0f} | {run.failures} | "
                f"{len(lat)} | {np.percentile(lat, 50):.1f} | {np.percentile(lat, 99):.1f} | "
                f"{lat.max():.1f} |"
            )
            print(rows[-1], file=sys.stderr)
    text = "\n\n".join([
        f"Hardware: {os.cpu_count()} cores, {platform.system()} {platform.release()}; the "
        f"service pinned to core 0 (1 worker, TORCH_THREADS=1), wrk (1 thread) on core 1; "
        f"{args.duration} s of load at concurrency {args.concurrency} per mode, `/health` "
        f"probed every {args.interval * 1000:.0f} ms.",
        f"Command: `{' '.join(['python', 'benchmarks/bench_heavy.py', *sys.argv[1:]])}`",
        f"Model: {model.name} version {model.version}, {model.provenance}.",
        "| mode | images/s | predict p99 ms | failed | /health probes | /health p50 ms "
        "| /health p99 ms | /health max ms |\n|---|---:|---:|---:|---:|---:|---:|---:|\n"
        + "\n".join(rows),
    ])  # fmt: skip
    print(text)
    args.out.write_text(f"# Heavy model benchmark results\n\n{text}\n")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
