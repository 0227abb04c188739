"""Benchmark: this service vs `mlflow models serve` vs a constant FastAPI endpoint.

One registered model (a small CNN trained on sklearn's digits, logged like the training
service logs it: mlflow.pytorch pt2 + signature + input example + classes) is served three
ways with the same worker count, each pinned to the same core; `wrk` (Debian package) runs
on the other core and sends byte-identical payloads at each concurrency and batch size.
All servers run at once and are measured in turn, `--repeat` rounds per setting, so that
slow drifts of a shared machine hit them alike; the table shows the median run and the
range of requests/s. Prints a markdown table and writes it to benchmarks/results.md.

    PATH=<venv>/bin:$PATH PYTHONPATH=src python benchmarks/bench.py [--duration 8]

The parts: `processes.py` (servers, pinning, an idle core), `digits_model.py` (the model),
`wrk_load.py` (wrk runs and their medians), `report.py` (the tables).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

import numpy as np
from digits_model import MODEL, register_model
from processes import free_port, pinned, process, wait_server_core_idle
from report import report, table
from wrk_load import Run, Target, check_answers, median_run, wrk

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
SERVERS = (
    "serving-service /v1/predict",
    "serving-service /invocations",
    "mlflow models serve",
    "constant FastAPI",
)
# What is measured, how it is started (command, extra environment) and its readiness URL.
Server = tuple[Target, list[str], dict[str, str], str]


def parse_args() -> argparse.Namespace:
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
    return parser.parse_args()


def write_bodies(work: Path, x: np.ndarray, batches: list[int]) -> dict[int, Path]:
    """One request body per batch size, the same bytes for every server."""
    bodies: dict[int, Path] = {}
    for b in batches:
        # (1, 8, 8) per instance: the signature's own shape, valid for all three servers.
        reps = int(np.ceil(b / len(x)))
        batch = np.concatenate([x] * reps)[:b]
        bodies[b] = work / f"body-{b}.json"
        bodies[b].write_text(json.dumps({"instances": batch.round(4).tolist()}))
    return bodies


def servers(version: str, workers: str, ports: tuple[int, int, int]) -> list[Server]:
    """The four measured targets; both routes of this service share one process."""
    ours_port, theirs_port, const_port = ports
    ours = [sys.executable, "-m", "serving_service"]
    ours_env = {"PORT": str(ours_port), "WORKERS": workers, "MODEL_NAME": MODEL,
                "ENVIRONMENT": "local", "LOG_LEVEL": "warning"}  # fmt: skip
    theirs = [str(BIN / "mlflow"), "models", "serve", "-m", f"models:/{MODEL}/{version}",
              "--env-manager", "local", "--host", "127.0.0.1", "-p", str(theirs_port),
              "-w", workers]  # fmt: skip
    constant = [sys.executable, "-m", "uvicorn", "constant_app:app", "--host", "127.0.0.1",
                "--port", str(const_port), "--workers", workers, "--no-access-log",
                "--loop", "uvloop", "--http", "httptools", "--app-dir", str(HERE)]  # fmt: skip
    return [
        (Target("serving-service /v1/predict", f"http://127.0.0.1:{ours_port}/v1/predict"),
         ours, ours_env, f"http://127.0.0.1:{ours_port}/ready"),
        (Target("serving-service /invocations", f"http://127.0.0.1:{ours_port}/invocations"),
         ours, ours_env, f"http://127.0.0.1:{ours_port}/ready"),
        (Target("mlflow models serve", f"http://127.0.0.1:{theirs_port}/invocations"),
         theirs, {}, f"http://127.0.0.1:{theirs_port}/ping"),
        (Target("constant FastAPI", f"http://127.0.0.1:{const_port}/predict"),
         constant, {}, f"http://127.0.0.1:{const_port}/health"),
    ]  # fmt: skip


def measure(
    chosen: list[Server], bodies: dict[int, Path], env: dict[str, str], work: Path,
    args: argparse.Namespace,
) -> list[Run]:  # fmt: skip
    """Start the servers side by side, then measure them in turn, `args.repeat` rounds."""
    runs: list[Run] = []
    with ExitStack() as stack:
        started: set[tuple[str, ...]] = set()
        for target, cmd, extra, ready in chosen:
            if tuple(cmd) not in started:  # both routes of this service share a process
                started.add(tuple(cmd))
                log = work / f"server-{len(started)}.log"
                stack.enter_context(process(pinned("0", cmd), {**env, **extra}, ready, log))
            check_answers([target], bodies)
            wrk(target.url, bodies[1], 16, 2, target.label, 1)  # warm-up
        for b in args.batch:
            for c in args.concurrency:
                rounds: dict[str, list[Run]] = {t.label: [] for t, *_ in chosen}
                for _ in range(args.repeat):
                    for target, *_ in chosen:
                        wait_server_core_idle()
                        run = wrk(target.url, bodies[b], c, args.duration, target.label, b)
                        print(table([run]).splitlines()[-1], file=sys.stderr)
                        rounds[target.label].append(run)
                runs.extend(median_run(r) for r in rounds.values())
    return runs


def main() -> None:
    args = parse_args()
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
        bodies = write_bodies(work, x, args.batch)
        chosen = [
            s for s in servers(version, w, (ours_port, theirs_port, const_port))
            if s[0].label in args.servers
        ]  # fmt: skip
        env = {**base_env, "MLFLOW_TRACKING_URI": tracking}
        runs = measure(chosen, bodies, env, work, args)
    load_after = os.getloadavg()
    runs.sort(key=lambda r: (r.batch, r.concurrency, r.target))
    text = report(
        runs, duration=args.duration, repeat=args.repeat, workers=w,
        load_before=load_before, load_after=load_after,
    )  # fmt: skip
    print(text)
    args.out.write_text(f"# Benchmark results\n\n{text}\n")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
