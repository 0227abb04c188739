"""Benchmark: this service vs `mlflow models serve` vs a constant FastAPI endpoint.

One registered model (a small CNN trained on sklearn's digits, logged like the training
service logs it: mlflow.pytorch pt2 + signature + input example + classes) is served three
ways with the same worker count, each pinned to the same core; `wrk` (Debian package) runs
on the other core and sends byte-identical payloads at each concurrency and batch size.
All servers run at once and are measured in turn, `--repeat` rounds per setting, so that
slow drifts of a shared machine hit them alike; the table shows the median run and the
range of requests/s. Prints a markdown table and writes it to benchmarks/results.md.

    PATH=<venv>/bin:$PATH PYTHONPATH=src python benchmarks/bench.py [--duration 8]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
MODEL = "bench-digits"
SERVERS = (
    "serving-service /v1/predict",
    "serving-service /invocations",
    "mlflow models serve",
    "constant FastAPI",
)


@dataclass(frozen=True)
class Target:
    label: str
    url: str  # POST endpoint


@dataclass(frozen=True)
class Run:
    target: str
    concurrency: int
    batch: int
    rps: float
    p50_ms: float
    p99_ms: float
    failures: int
    rps_min: float | None = None  # over the repeated runs this row summarizes
    rps_max: float | None = None

    @property
    def images_per_s(self) -> float:
        return self.rps * self.batch


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ok(url: str, proc: subprocess.Popen[bytes], timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args} exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise TimeoutError(url)


@contextmanager
def process(
    args: list[str], env: dict[str, str], ready_url: str, log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen(args, env={**os.environ, **env}, stdout=out, stderr=out)
        try:
            wait_ok(ready_url, proc)
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


def core_busy(core: int, seconds: float = 0.5) -> float:
    """Fraction of `seconds` that `core` spent not idle (from /proc/stat)."""

    def sample() -> tuple[int, int]:
        for line in Path("/proc/stat").read_text().splitlines():
            if line.startswith(f"cpu{core} "):
                ticks = [int(v) for v in line.split()[1:]]
                return sum(ticks), ticks[3] + ticks[4]  # total, idle + iowait
        raise RuntimeError(f"no cpu{core} in /proc/stat")

    total0, idle0 = sample()
    time.sleep(seconds)
    total1, idle1 = sample()
    return 1 - (idle1 - idle0) / max(total1 - total0, 1)


def wait_server_core_idle(timeout: float = 60) -> None:
    """Wait until core 0 is quiet: a server still working off a backlog of requests after
    wrk stopped (mlflow at batch 256) would otherwise slow down the next server's run."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and core_busy(0) > 0.1:
        pass


def pinned(core: str, args: list[str]) -> list[str]:
    return ["taskset", "-c", core, *args] if shutil.which("taskset") else args


def register_model(tracking_uri: str) -> tuple[str, np.ndarray]:
    """Train a small CNN on digits and register it the way the training service does."""
    import mlflow
    import torch
    from mlflow.models import infer_signature
    from sklearn.datasets import load_digits
    from torch import nn

    torch.set_num_threads(1)
    torch.manual_seed(0)
    data = load_digits()
    x = (data.images / 16.0).astype(np.float32)[:, None]
    y = torch.from_numpy(data.target.astype(np.int64))
    net = nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 2 * 2, 10),
    )  # fmt: skip
    opt = torch.optim.Adam(net.parameters(), lr=0.01)
    xt = torch.from_numpy(x)
    for _ in range(60):
        opt.zero_grad()
        nn.functional.cross_entropy(net(xt), y).backward()
        opt.step()
    net.eval()
    example = x[:2]
    with torch.no_grad():
        out = net(torch.from_numpy(example)).numpy()
    classes = [str(i) for i in range(10)]
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment("serving-benchmark")
    with mlflow.start_run():
        info = mlflow.pytorch.log_model(
            net,
            name="model",
            input_example=example,
            signature=infer_signature(example, out),
            metadata={"classes": classes},
            registered_model_name=MODEL,
            pip_requirements=["torch==2.13.0"],
        )
    version = str(info.registered_model_version)
    client = mlflow.tracking.MlflowClient(tracking_uri, tracking_uri)
    client.set_model_version_tag(MODEL, version, "classes", json.dumps(classes))
    client.set_registered_model_alias(MODEL, "production", version)
    return version, x


def wrk(url: str, body: Path, concurrency: int, seconds: int, label: str, batch: int) -> Run:
    args = pinned("1", ["wrk", "-t1", f"-c{concurrency}", f"-d{int(seconds)}s", "--latency",
                        "-s", str(HERE / "post.lua"), url])  # fmt: skip
    out = subprocess.run(
        args, env={**os.environ, "WRK_BODY": str(body)}, capture_output=True, text=True,
        check=True,
    ).stdout  # fmt: skip
    match = re.search(r"WRK_JSON (\{.*\})", out)
    if not match:
        raise RuntimeError(f"wrk printed no summary:\n{out}")
    s = json.loads(match.group(1))
    return Run(
        target=label,
        concurrency=concurrency,
        batch=batch,
        rps=s["requests"] / (s["duration_us"] / 1e6),
        p50_ms=s["p50_us"] / 1000,
        p99_ms=s["p99_us"] / 1000,
        failures=s["non2xx"] + s["socket_errors"],
    )


def check_answers(targets: list[Target], bodies: dict[int, Path]) -> None:
    """Refuse to benchmark endpoints that do not actually answer the payload."""
    for t in targets:
        r = httpx.post(t.url, content=bodies[1].read_bytes(),
                       headers={"content-type": "application/json"}, timeout=30)  # fmt: skip
        if r.status_code != 200:
            raise RuntimeError(f"{t.label} answered {r.status_code}: {r.text[:300]}")


def median_run(runs: list[Run]) -> Run:
    """One row for repeated runs of a setting: medians, summed failures, req/s range."""
    first = runs[0]
    return Run(
        target=first.target,
        concurrency=first.concurrency,
        batch=first.batch,
        rps=statistics.median(r.rps for r in runs),
        p50_ms=statistics.median(r.p50_ms for r in runs),
        p99_ms=statistics.median(r.p99_ms for r in runs),
        failures=sum(r.failures for r in runs),
        rps_min=min(r.rps for r in runs),
        rps_max=max(r.rps for r in runs),
    )


def table(runs: list[Run]) -> str:
    lines = [
        "| server | concurrency | batch | requests/s | req/s range | images/s | p50 ms | p99 ms "
        "| failed |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in runs:
        spread = f"{r.rps_min:,.0f}-{r.rps_max:,.0f}" if r.rps_min is not None else ""
        lines.append(
            f"| {r.target} | {r.concurrency} | {r.batch} | {r.rps:,.0f} | {spread}"
            f" | {r.images_per_s:,.0f} | {r.p50_ms:.2f} | {r.p99_ms:.2f} | {r.failures} |"
        )
    return "\n".join(lines)


def ratios(runs: list[Run], ours: str, theirs: str, constant: str) -> str:
    by = {(r.target, r.concurrency, r.batch): r for r in runs}
    lines = [
        f"| concurrency | batch | {ours} / mlflow serve (req/s) | {ours} / constant (req/s) |",
        "|---:|---:|---:|---:|",
    ]
    for (target, c, b), r in by.items():
        if target != ours:
            continue
        m, k = by.get((theirs, c, b)), by.get((constant, c, b))
        vs_m = f"{r.rps / m.rps:.1f}x" if m and m.rps else "n/a"
        vs_k = f"{r.rps / k.rps:.2f}" if k and k.rps else "n/a"
        lines.append(f"| {c} | {b} | {vs_m} | {vs_k} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=8, help="seconds per wrk run")
    parser.add_argument("--repeat", type=int, default=3, help="runs per setting (median)")
    parser.add_argument("--workers", type=int, default=1, help="server workers, all three")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 256])
    parser.add_argument("--out", type=Path, default=HERE / "results.md")
    parser.add_argument(
        "--servers", nargs="+", choices=SERVERS, default=list(SERVERS),
        help="which servers to measure (default: all four)",
    )  # fmt: skip
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk not found: apt-get install -y wrk")

    work = Path(tempfile.mkdtemp(prefix="serving-bench-"))
    base_env = {
        "PATH": f"{BIN}:{os.environ.get('PATH', '')}",
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    }
    mlflow_port, ours_port, theirs_port, const_port = (free_port() for _ in range(4))
    tracking = f"http://127.0.0.1:{mlflow_port}"
    w = str(args.workers)
    load_before = os.getloadavg()
    with process(
        [str(BIN / "mlflow"), "server", "--backend-store-uri", f"sqlite:///{work}/mlflow.db",
         "--artifacts-destination", str(work / "artifacts"), "--serve-artifacts",
         "--host", "127.0.0.1", "--port", str(mlflow_port), "--workers", "1"],
        base_env, f"{tracking}/health", work / "mlflow.log",
    ):  # fmt: skip
        version, x = register_model(tracking)
        print(f"registered {MODEL} version {version}", file=sys.stderr)
        bodies: dict[int, Path] = {}
        for b in args.batch:
            # (1, 8, 8) per instance: the signature's own shape, valid for all three servers.
            reps = int(np.ceil(b / len(x)))
            batch = np.concatenate([x] * reps)[:b]
            bodies[b] = work / f"body-{b}.json"
            bodies[b].write_text(json.dumps({"instances": batch.round(4).tolist()}))
        env = {**base_env, "MLFLOW_TRACKING_URI": tracking}
        ours = [sys.executable, "-m", "serving_service"]
        theirs = [str(BIN / "mlflow"), "models", "serve", "-m", f"models:/{MODEL}/{version}",
                  "--env-manager", "local", "--host", "127.0.0.1", "-p", str(theirs_port),
                  "-w", w]  # fmt: skip
        constant = [sys.executable, "-m", "uvicorn", "constant_app:app", "--host", "127.0.0.1",
                    "--port", str(const_port), "--workers", w, "--no-access-log",
                    "--loop", "uvloop", "--http", "httptools", "--app-dir", str(HERE)]  # fmt: skip
        servers = [
            (Target("serving-service /v1/predict", f"http://127.0.0.1:{ours_port}/v1/predict"),
             ours, {"PORT": str(ours_port), "WORKERS": w, "MODEL_NAME": MODEL,
                    "ENVIRONMENT": "local", "LOG_LEVEL": "warning"},
             f"http://127.0.0.1:{ours_port}/ready"),
            (Target("serving-service /invocations", f"http://127.0.0.1:{ours_port}/invocations"),
             ours, {"PORT": str(ours_port), "WORKERS": w, "MODEL_NAME": MODEL,
                    "ENVIRONMENT": "local", "LOG_LEVEL": "warning"},
             f"http://127.0.0.1:{ours_port}/ready"),
            (Target("mlflow models serve", f"http://127.0.0.1:{theirs_port}/invocations"),
             theirs, {}, f"http://127.0.0.1:{theirs_port}/ping"),
            (Target("constant FastAPI", f"http://127.0.0.1:{const_port}/predict"),
             constant, {}, f"http://127.0.0.1:{const_port}/health"),
        ]  # fmt: skip
        runs: list[Run] = []
        servers = [s for s in servers if s[0].label in args.servers]
        with ExitStack() as stack:
            started: set[tuple[str, ...]] = set()
            for target, cmd, extra, ready in servers:
                if tuple(cmd) not in started:  # both routes of this service share a process
                    started.add(tuple(cmd))
                    log = work / f"server-{len(started)}.log"
                    stack.enter_context(process(pinned("0", cmd), {**env, **extra}, ready, log))
                check_answers([target], bodies)
                wrk(target.url, bodies[1], 16, 2, target.label, 1)  # warm-up
            for b in args.batch:
                for c in args.concurrency:
                    rounds: dict[str, list[Run]] = {t.label: [] for t, *_ in servers}
                    for _ in range(args.repeat):
                        for target, *_ in servers:
                            wait_server_core_idle()
                            run = wrk(target.url, bodies[b], c, args.duration, target.label, b)
                            print(table([run]).splitlines()[-1], file=sys.stderr)
                            rounds[target.label].append(run)
                    runs.extend(median_run(r) for r in rounds.values())
    load_after = os.getloadavg()
    runs.sort(key=lambda r: (r.batch, r.concurrency, r.target))
    cpu = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")), platform.processor(),
    )  # fmt: skip
    report = "\n\n".join([
        f"Hardware: {os.cpu_count()} cores ({cpu}), {platform.system()} {platform.release()}; "
        f"servers pinned to core 0 with {w} worker(s) each, wrk (1 thread) pinned to core 1; "
        f"{args.duration:g} s per run, median of {args.repeat} runs per row, the servers "
        f"measured in turn. Load average before/after: "
        f"{load_before[0]:.1f}/{load_after[0]:.1f} (other jobs shared the machine).",
        f"Command: `make bench` (= `python benchmarks/bench.py --duration {args.duration:g} "
        f"--repeat {args.repeat} --workers {w}`)",
        table(runs),
        ratios(runs, "serving-service /v1/predict", "mlflow models serve", "constant FastAPI"),
    ])  # fmt: skip
    print(report)
    args.out.write_text(f"# Benchmark results\n\n{report}\n")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
