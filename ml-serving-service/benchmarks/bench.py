"""Benchmark: this service vs `mlflow models serve` vs two constant endpoints.

One registered model is served by this service and by `mlflow models serve`, with the same
worker count, each pinned to the same core; `wrk` (Debian package) runs on the other core
and sends byte-identical payloads at each concurrency and batch size. The model is the one
ml-training-service registers when `--training-service DIR` is given (its own command line
trains and registers it, see `training_model.py`), else the bench's own small CNN
(`digits_model.py`, so the subtree still benchmarks on its own). Before any timing, every
model server must give the same answers on the same held-out digits (`agreement.py`).
Two ceilings do no inference: a constant on the service's own raw ASGI path
(`constant_asgi.py`: the scoring fast path, a precomputed answer) and a bare FastAPI
endpoint (`constant_app.py`). All servers run at once and are measured in turn, `--repeat`
rounds per setting, so that slow drifts of a shared machine hit them alike; the table shows
the median run and the range of requests/s. Prints markdown and writes it to
benchmarks/results.md. `--servers ... "serving-service /v1/predict STATE_URL"` adds the
service with its shared state in a local redis-server (issue #17: what the id writes cost).

    PATH=<venv>/bin:$PATH PYTHONPATH=src python benchmarks/bench.py [--duration 8] \\
        [--training-service ../ml-training-service --training-python <its venv>/bin/python]

The parts: `processes.py` (servers, pinning, an idle core), `digits_model.py` and
`training_model.py` (the model), `agreement.py` (same answers), `wrk_load.py` (wrk runs and
their medians), `report.py` (the tables).
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

import httpx
import numpy as np
from agreement import check_agreement
from digits_model import MODEL, RegisteredModel, register_model
from processes import free_port, pinned, process, redis_server, wait_server_core_idle
from report import report, table
from training_model import register_with_training_service
from wrk_load import Run, Target, check_answers, median_run, wrk

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
SERVERS = (
    "serving-service /v1/predict",
    "serving-service /invocations",
    "mlflow models serve",
    "constant raw ASGI",
    "constant FastAPI",
)
# Opt-in (`--servers`): the service with STATE_URL, prediction ids written to a local
# redis-server (Debian package, pinned to the servers' core like everything server-side).
SHARED = "serving-service /v1/predict STATE_URL"
CONSTANTS = ("constant raw ASGI", "constant FastAPI")  # no inference: not compared
# What is measured, how it is started (command, extra environment) and its readiness URL.
Server = tuple[Target, list[str], dict[str, str], str]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=8, help="seconds per wrk run")
    parser.add_argument("--repeat", type=int, default=3, help="runs per setting (median)")
    parser.add_argument("--workers", type=int, default=1, help="workers of every server")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 256])
    parser.add_argument("--out", type=Path, default=HERE / "results.md")
    parser.add_argument(
        "--idle-timeout", type=float, default=60,
        help="seconds to wait for the server core to go idle before each run (a loaded "
        "machine never does: lower it there)",
    )  # fmt: skip
    parser.add_argument(
        "--servers", nargs="+", choices=[*SERVERS, SHARED], default=list(SERVERS),
        help=f"which servers to measure (default: all five; '{SHARED}' needs redis-server)",
    )  # fmt: skip
    parser.add_argument(
        "--training-service", type=Path, default=None, metavar="DIR",
        help="serve the model this training subtree registers (its CLI, run from DIR) "
        "instead of the bench's own CNN",
    )  # fmt: skip
    parser.add_argument(
        "--training-python", type=Path, default=None, metavar="PYTHON",
        help="the training subtree's venv python (default: DIR/.venv/bin/python)",
    )  # fmt: skip
    return parser.parse_args()


def write_bodies(work: Path, x: np.ndarray, batches: list[int]) -> dict[int, Path]:
    """One request body per batch size, the same bytes for every server."""
    bodies: dict[int, Path] = {}
    for b in batches:
        # (1, 8, 8) per instance: the signature's own shape, valid for every server.
        reps = int(np.ceil(b / len(x)))
        batch = np.concatenate([x] * reps)[:b]
        bodies[b] = work / f"body-{b}.json"
        bodies[b].write_text(json.dumps({"instances": batch.round(4).tolist()}))
    return bodies


def servers(
    version: str, workers: str, ports: list[int], answers: Path, state_url: str | None
) -> list[Server]:
    """The measured targets; both routes of this service share one process."""
    ours_port, theirs_port, raw_port, const_port, shared_port = ports
    ours = [sys.executable, "-m", "serving_service"]
    ours_env = {"PORT": str(ours_port), "WORKERS": workers, "MODEL_NAME": MODEL,
                "ENVIRONMENT": "local", "LOG_LEVEL": "warning"}  # fmt: skip
    theirs = [str(BIN / "mlflow"), "models", "serve", "-m", f"models:/{MODEL}/{version}",
              "--env-manager", "local", "--host", "127.0.0.1", "-p", str(theirs_port),
              "-w", workers]  # fmt: skip

    # The service's own uvicorn settings (serving_service/__main__.py) for both constants.
    def uvicorn(app: str, port: int) -> list[str]:
        return [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1",
                "--port", str(port), "--workers", workers, "--no-access-log",
                "--loop", "uvloop", "--http", "httptools", "--log-level", "warning",
                "--app-dir", str(HERE)]  # fmt: skip

    shared_env = {**ours_env, "PORT": str(shared_port), "STATE_URL": state_url or ""}
    return [
        (Target(SHARED, f"http://127.0.0.1:{shared_port}/v1/predict"),
         ours, shared_env, f"http://127.0.0.1:{shared_port}/ready"),
        (Target("serving-service /v1/predict", f"http://127.0.0.1:{ours_port}/v1/predict"),
         ours, ours_env, f"http://127.0.0.1:{ours_port}/ready"),
        (Target("serving-service /invocations", f"http://127.0.0.1:{ours_port}/invocations"),
         ours, ours_env, f"http://127.0.0.1:{ours_port}/ready"),
        (Target("mlflow models serve", f"http://127.0.0.1:{theirs_port}/invocations"),
         theirs, {}, f"http://127.0.0.1:{theirs_port}/ping"),
        (Target("constant raw ASGI", f"http://127.0.0.1:{raw_port}/v1/predict"),
         uvicorn("constant_asgi:app", raw_port), {"BENCH_CONSTANT_ANSWERS": str(answers)},
         f"http://127.0.0.1:{raw_port}/health"),
        (Target("constant FastAPI", f"http://127.0.0.1:{const_port}/predict"),
         uvicorn("constant_app:app", const_port), {}, f"http://127.0.0.1:{const_port}/health"),
    ]  # fmt: skip


def record_answers(chosen: list[Server], bodies: dict[int, Path], answers: Path) -> None:
    """The service's own /v1/predict answer to each body, for the raw-ASGI constant to send."""
    recorded: dict[str, str] = {}
    for target, *_ in chosen:
        if target.label == "serving-service /v1/predict":
            for body in bodies.values():
                content = body.read_bytes()
                r = httpx.post(target.url, content=content, timeout=60,
                               headers={"content-type": "application/json"})  # fmt: skip
                recorded[str(len(content))] = r.text
    answers.write_text(json.dumps(recorded))


def measure(
    chosen: list[Server], model: RegisteredModel, bodies: dict[int, Path], env: dict[str, str],
    work: Path, args: argparse.Namespace,
) -> tuple[list[Run], str]:  # fmt: skip
    """Start the model servers, check their answers agree, start the constants, then
    measure all of them in turn, `args.repeat` rounds; returns the runs and the agreement."""
    runs: list[Run] = []
    models = [s for s in chosen if s[0].label not in CONSTANTS]
    with ExitStack() as stack:
        started: set[tuple[str, ...]] = set()

        def start(cmd: list[str], extra: dict[str, str], ready: str) -> None:
            key = (*cmd, *sorted(extra.items()))
            if key not in started:  # both routes of this service share a process
                started.add(key)
                log = work / f"server-{len(started)}.log"
                stack.enter_context(process(pinned("0", cmd), {**env, **extra}, ready, log))

        for _, cmd, extra, ready in models:
            start(cmd, extra, ready)
        agreement = check_agreement([t for t, *_ in models], model)
        print(agreement, file=sys.stderr)
        record_answers(models, bodies, work / "constant-answers.json")
        for target, cmd, extra, ready in chosen:
            start(cmd, extra, ready)
            check_answers([target], bodies)
            wrk(target.url, bodies[1], 16, 2, target.label, 1)  # warm-up
        for b in args.batch:
            for c in args.concurrency:
                rounds: dict[str, list[Run]] = {t.label: [] for t, *_ in chosen}
                for _ in range(args.repeat):
                    for target, *_ in chosen:
                        wait_server_core_idle(args.idle_timeout)
                        run = wrk(target.url, bodies[b], c, args.duration, target.label, b)
                        print(table([run]).splitlines()[-1], file=sys.stderr)
                        rounds[target.label].append(run)
                runs.extend(median_run(r) for r in rounds.values())
    return runs, agreement


def main() -> None:
    args = parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk not found: apt-get install -y wrk")

    work = Path(tempfile.mkdtemp(prefix="serving-bench-"))
    base_env = {
        "PATH": f"{BIN}:{os.environ.get('PATH', '')}",
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    }
    mlflow_port, *ports = (free_port() for _ in range(6))
    tracking = f"http://127.0.0.1:{mlflow_port}"
    load_before = os.getloadavg()
    with ExitStack() as stack:
        state_url = None
        if SHARED in args.servers:
            state_url = stack.enter_context(redis_server(work, pinned("0", ["redis-server"])))
        run_all(args, work, base_env, tracking, mlflow_port, ports, state_url, load_before)
    shutil.rmtree(work, ignore_errors=True)


def run_all(
    args: argparse.Namespace, work: Path, base_env: dict[str, str], tracking: str,
    mlflow_port: int, ports: list[int], state_url: str | None,
    load_before: tuple[float, float, float],
) -> None:  # fmt: skip
    """MLflow, the model, the servers, the runs and the report."""
    w = str(args.workers)
    with process(
        [str(BIN / "mlflow"), "server", "--backend-store-uri", f"sqlite:///{work}/mlflow.db",
         "--artifacts-destination", str(work / "artifacts"), "--serve-artifacts",
         "--host", "127.0.0.1", "--port", str(mlflow_port), "--workers", "1"],
        base_env, f"{tracking}/health", work / "mlflow.log",
    ):  # fmt: skip
        if args.training_service:
            python = args.training_python or args.training_service / ".venv" / "bin" / "python"
            model = register_with_training_service(args.training_service, python, tracking, work)
        else:
            model = register_model(tracking)
        provenance = f"Model: {MODEL} version {model.version}, {model.provenance}."
        print(provenance, file=sys.stderr)
        bodies = write_bodies(work, model.x_held_out, args.batch)
        chosen = [
            s for s in servers(model.version, w, ports, work / "constant-answers.json",
                               state_url)
            if s[0].label in args.servers
        ]  # fmt: skip
        env = {**base_env, "MLFLOW_TRACKING_URI": tracking}
        runs, agreement = measure(chosen, model, bodies, env, work, args)
    load_after = os.getloadavg()
    runs.sort(key=lambda r: (r.batch, r.concurrency, r.target))
    text = report(
        runs, duration=args.duration, repeat=args.repeat, workers=w,
        load_before=load_before, load_after=load_after, notes=[provenance, agreement],
    )  # fmt: skip
    print(text)
    args.out.write_text(f"# Benchmark results\n\n{text}\n")


if __name__ == "__main__":
    main()
