"""Benchmark: the Ray executor against the local one, through the real service (issue #18).

    make bench-ray        (or: PYTHONPATH=src python benchmarks/bench_ray.py)

Starts a real `mlflow server`, a real local Ray head (`ray start --head --block`, 2 CPUs,
its own temp dir and port; its process group is stopped at the end) and two real services
(`python -m training_service`, uvicorn): TRAINING_EXECUTOR=local (the process executor,
TORCH_THREADS=1) and TRAINING_EXECUTOR=ray (RAY_ADDRESS = that head). Both read the same
dataset snapshots, built once by the service's own builder (`build_dataset`) into a cache
folder that later runs reuse. Each service first trains a 1-epoch digits job (the cold
start: worker imports, the Ray connection), reported apart. Then, all through POST /v1/train:

1. One epoch of `small_cnn` on a 50,000-image 32x32 RGB `shapes` set (same seed, batch size
   and learning rate): local, Ray num_workers=1, Ray num_workers=2. "epoch (s)" is the
   run's MLflow metric `train_seconds` (the training loop of the epoch plus its held-out
   evaluation, timed in the training process, rank 0 for Ray); "job (s)" is the job's
   created_at -> finished_at (queue, worker start, the epoch, logging the model), and "to
   run start" the part of it before the MLflow run opened (queue, worker or worker group).
2. digits, 15 epochs, default options otherwise (batch 64, registers a version): local and
   Ray num_workers=1, alternating, BENCH_RAY_REPEATS times; the median job time
   (created_at -> finished_at) of each and their difference, Ray's overhead (target <= 5 s).

Prints a markdown table, then one JSON line (`{"benchmark": "ray", ...}`).
Environment: BENCH_RAY_IMAGES (default 50000; 0 skips part 1), BENCH_RAY_REPEATS (default
3; 0 skips part 2), BENCH_RAY_BATCH (64), BENCH_RAY_LR (0.003), BENCH_RAY_CACHE (dataset
cache, default $TMPDIR/bench-ray). Quick smoke: BENCH_RAY_IMAGES=2000 BENCH_RAY_REPEATS=1.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests")]
# The suites' real-process helpers: one way to run mlflow, Ray and the service here.
from ray_support import RayHead  # noqa: E402
from support import (  # noqa: E402
    AUTH,
    ServiceProcess,
    free_port,
    start_mlflow_server,
    stop_process_group,
    wait_for_job,
)

IMAGES = int(os.environ.get("BENCH_RAY_IMAGES", "50000"))
REPEATS = int(os.environ.get("BENCH_RAY_REPEATS", "3"))
BATCH = int(os.environ.get("BENCH_RAY_BATCH", "64"))
LEARNING_RATE = float(os.environ.get("BENCH_RAY_LR", "0.003"))
CACHE = Path(os.environ.get("BENCH_RAY_CACHE", Path(tempfile.gettempdir()) / "bench-ray"))
DIGITS_EPOCHS, OVERHEAD_TARGET, SEED = 15, 5.0, 7
ENDED = {"succeeded", "failed", "cancelled"}


def cached_dataset(source: str, count: int | None = None) -> tuple[str, float | None]:
    """The id of a snapshot in CACHE (built now if missing) and its build time (None: cached)."""
    from training_service.data import DatasetLimits, DatasetStore, build_dataset

    store = DatasetStore(CACHE / "datasets")
    store.remove_leftovers()
    options = {"image_size": 32, "channels": 3, "count": count} if source == "shapes" else {}
    for directory in sorted(store.root.glob("ds-*")):
        info = store.info(directory.name)
        size = info.n_train + info.n_test
        shape = (info.image_size, info.channels) if source == "shapes" else (32, 3)
        if (info.source, info.seed, shape) == (source, 1, (32, 3)) and size == (count or size):
            return info.dataset_id, None
    started = time.perf_counter()
    limits = DatasetLimits(max_dataset_images=max(count or 0, 200_000))
    dataset = build_dataset(
        source, data_dir=CACHE, seed=1, limits=limits, store=store, **options  # type: ignore[arg-type]
    )  # fmt: skip
    return dataset.info.dataset_id, time.perf_counter() - started


def start_service(executor: str, workdir: Path, env: dict[str, str]) -> ServiceProcess:
    data_dir = workdir / f"data-{executor}"
    data_dir.mkdir(parents=True)
    (data_dir / "datasets").symlink_to((CACHE / "datasets").resolve(), target_is_directory=True)
    settings = {
        "TRAINING_EXECUTOR": executor,
        "EXPERIMENT": "benchmark-ray",
        "MODEL_NAME": f"bench-ray-{executor}",
        "TORCH_THREADS": "1",
        "MAX_DATASET_IMAGES": "200000",
        **env,
    }
    return ServiceProcess(data_dir, settings, workdir / f"service-{executor}.log").start(180)


def seconds_between(start: str, end: str) -> float:
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


def train(
    client: httpx.Client, mlflow_uri: str, body: dict[str, object], timeout: float
) -> dict[str, object]:
    """Submit one job, wait for it; its job time, MLflow train_seconds, accuracy, status."""
    response = client.post("/v1/train", json=body)
    if response.status_code != 202:
        raise SystemExit(f"POST /v1/train answered {response.status_code}: {response.text}")
    job = wait_for_job(client, response.json()["job_id"], ENDED, timeout)
    result: dict[str, object] = {"status": job["status"], "error": job["error"]}
    if job["status"] != "succeeded":
        print(f"job {job['job_id']} {job['status']}: {job['error']}", file=sys.stderr)
        return result
    run = httpx.get(
        f"{mlflow_uri}/api/2.0/mlflow/runs/get", params={"run_id": job["run_id"]}, timeout=30
    ).json()["run"]
    metrics = {m["key"]: m["value"] for m in run["data"].get("metrics", [])}
    run_start = datetime.fromtimestamp(run["info"]["start_time"] / 1000, UTC).isoformat()
    return {
        **result,
        "job_seconds": round(seconds_between(job["created_at"], job["finished_at"]), 2),
        # Submitted -> the MLflow run opened: queue, worker (group) start, imports, data.
        "to_run_start_seconds": round(seconds_between(job["created_at"], run_start), 2),
        "train_seconds": round(metrics["train_seconds"], 2),
        "test_accuracy": round(job["metrics"]["test_accuracy"], 4),
    }


def fmt(value: object, digits: int = 1) -> str:
    return f"{value:.{digits}f}" if isinstance(value, float) else "-"


def main() -> None:
    started = time.perf_counter()
    load_before = os.getloadavg()[0]
    digits_id, digits_build = cached_dataset("digits")
    shapes_id, shapes_build = cached_dataset("shapes", IMAGES) if IMAGES else ("", None)
    print(f"datasets in {CACHE}: digits {digits_id}, shapes {shapes_id or '-'} (built in "
          f"{fmt(shapes_build)} s; '-' = cached)", flush=True)  # fmt: skip
    workdir = Path(tempfile.mkdtemp(prefix="bench-ray-"))
    mlflow_port = free_port()
    mlflow_uri = f"http://127.0.0.1:{mlflow_port}"
    head = RayHead(workdir / "ray", free_port(), cpus=2)
    mlflow_server = start_mlflow_server(workdir / "mlflow", mlflow_port)
    services: dict[str, ServiceProcess] = {}
    results: dict[str, object] = {}
    try:
        head.start()
        base = {"MLFLOW_TRACKING_URI": mlflow_uri}
        services["local"] = start_service("local", workdir, base)
        ray_env = {**base, "RAY_ADDRESS": head.address, **head.auth_env}
        services["ray"] = start_service("ray", workdir, ray_env)
        clients = {name: service.client() for name, service in services.items()}
        for client in clients.values():
            client.headers.update(AUTH)
        cold = {
            name: train(
                client, mlflow_uri, {"dataset_id": digits_id, "epochs": 1, "register": False}, 600
            )  # fmt: skip
            for name, client in clients.items()
        }
        results["cold_first_job"] = cold
        times = [f"{name} {fmt(run.get('job_seconds'))} s" for name, run in cold.items()]
        print(f"cold first job (1 epoch digits): {', '.join(times)}", flush=True)
        epoch_runs = []
        if IMAGES:
            body = {"dataset_id": shapes_id, "architecture": "small_cnn", "epochs": 1,
                    "batch_size": BATCH, "learning_rate": LEARNING_RATE, "seed": SEED,
                    "register": False}  # fmt: skip
            for name, workers in (("local", 1), ("ray", 1), ("ray", 2)):
                run = train(clients[name], mlflow_uri, {**body, "num_workers": workers}, 4 * 3600)
                epoch_runs.append({"executor": name, "num_workers": workers, **run})
                print(f"epoch on {IMAGES} images, {name} x{workers}: {run}", flush=True)
        results["epoch"] = epoch_runs
        digits: dict[str, list[dict]] = {"local": [], "ray": []}  # succeeded runs
        for repeat in range(REPEATS):
            for name, client in clients.items():
                run = train(client, mlflow_uri, {"dataset_id": digits_id,
                                                 "epochs": DIGITS_EPOCHS}, 1800)  # fmt: skip
                if run["status"] == "succeeded":
                    digits[name].append(run)
                print(f"digits {DIGITS_EPOCHS} epochs #{repeat + 1}, {name}: {run}", flush=True)
        results["digits"] = summarize_digits(digits)
    finally:
        for service in services.values():
            service.stop()
        head.stop()
        stop_process_group(mlflow_server)
        shutil.rmtree(workdir, ignore_errors=True)
    results.update(
        benchmark="ray", images=IMAGES, repeats=REPEATS, batch_size=BATCH,
        learning_rate=LEARNING_RATE, seed=SEED, cores=os.cpu_count(),
        load_before=round(load_before, 1), load_after=round(os.getloadavg()[0], 1),
        shapes_build_seconds=None if shapes_build is None else round(shapes_build, 1),
        total_seconds=round(time.perf_counter() - started, 1),
    )  # fmt: skip
    print_tables(results)
    print(json.dumps(results), flush=True)
    failed = [r for r in results["epoch"] if r["status"] != "succeeded"]  # type: ignore[attr-defined]
    digits_summary: dict = results["digits"]  # type: ignore[assignment]
    if failed or digits_summary["failed"]:
        raise SystemExit("some jobs did not succeed (see above)")


def median(values: list[float]) -> float | None:
    return round(statistics.median(values), 2) if values else None


def summarize_digits(runs: dict[str, list[dict]]) -> dict[str, object]:
    """Median job time per executor, Ray's overhead, and the median time outside the
    training loop (job time - MLflow train_seconds) that explains it."""
    seconds = {name: [r["job_seconds"] for r in done] for name, done in runs.items()}
    outside = {
        name: [r["job_seconds"] - r["train_seconds"] for r in done] for name, done in runs.items()
    }
    local, ray = median(seconds["local"]), median(seconds["ray"])
    overhead = None if local is None or ray is None else round(ray - local, 2)
    return {
        "epochs": DIGITS_EPOCHS,
        "local_seconds": seconds["local"],
        "ray_seconds": seconds["ray"],
        "median_local": local,
        "median_ray": ray,
        "median_outside_training_local": median(outside["local"]),
        "median_outside_training_ray": median(outside["ray"]),
        "median_to_run_start_local": median([r["to_run_start_seconds"] for r in runs["local"]]),
        "median_to_run_start_ray": median([r["to_run_start_seconds"] for r in runs["ray"]]),
        "overhead_seconds": overhead,
        "target_seconds": OVERHEAD_TARGET,
        "met": None if overhead is None else overhead <= OVERHEAD_TARGET,
        "failed": 2 * REPEATS - len(seconds["local"]) - len(seconds["ray"]),
    }


def print_tables(results: dict) -> None:  # type: ignore[type-arg]
    loads = f"{results['load_before']}/{results['load_after']}"
    print(f"\n## Ray vs local executor (cores: {results['cores']}, load before/after: "
          f"{loads}, run {results['total_seconds']} s)\n")  # fmt: skip
    if results["epoch"]:
        print(f"One epoch of small_cnn on {results['images']} shapes images, 32x32 RGB "
              f"(batch {results['batch_size']}, lr {results['learning_rate']}, seed "
              f"{results['seed']}):\n")  # fmt: skip
        print("| executor | workers | epoch (s, MLflow train_seconds) | job (s) "
              "| job - epoch (s) | of it, to run start (s) | test accuracy | status |")  # fmt: skip
        print("|---|---:|---:|---:|---:|---:|---:|---|")
        for run in results["epoch"]:
            outside = run["job_seconds"] - run["train_seconds"] if "job_seconds" in run else None
            print(f"| {run['executor']} | {run['num_workers']} | {fmt(run.get('train_seconds'))} "
                  f"| {fmt(run.get('job_seconds'))} | {fmt(outside)} "
                  f"| {fmt(run.get('to_run_start_seconds'))} "
                  f"| {fmt(run.get('test_accuracy'), 4)} | {run['status']} |")  # fmt: skip
        accuracies = [r["test_accuracy"] for r in results["epoch"] if "test_accuracy" in r]
        if accuracies:
            print(f"\ntest accuracy spread: {max(accuracies) - min(accuracies):.4f}")
    digits = results["digits"]
    if REPEATS:
        print(f"\ndigits, {digits['epochs']} epochs, job time created -> finished, median of "
              f"{results['repeats']}:\n")  # fmt: skip
        print("| local (s) | Ray, 1 worker (s) | Ray overhead (s) | target | met "
              "| outside training: local / Ray (s) | of it, to run start (s) |")  # fmt: skip
        print("|---:|---:|---:|---:|---|---:|---:|")
        print(f"| {fmt(digits['median_local'])} | {fmt(digits['median_ray'])} "
              f"| {fmt(digits['overhead_seconds'])} | <= {digits['target_seconds']:g} "
              f"| {digits['met']} | {fmt(digits['median_outside_training_local'])} / "
              f"{fmt(digits['median_outside_training_ray'])} "
              f"| {fmt(digits['median_to_run_start_local'])} / "
              f"{fmt(digits['median_to_run_start_ray'])} |\n")  # fmt: skip


if __name__ == "__main__":
    main()
