"""`make demo`: the whole lifecycle on the embedded stack, driven through the real scheduler.

Starts the stack (or reuses it), triggers `mlflow_orchestration_pipeline` through Airflow's
REST API and waits for it, then `model_management` (which promotes the new version to
`production`), then asks the serving service for predictions on held-out digits and prints
a summary (dataset, network, image size, epochs, accuracy, aliases, served version). Exits
non-zero with the failing task's log excerpt when anything fails.

Digits (8x8 grayscale, `small_cnn`) are the quick default. The pipeline's params come from
the environment for other runs: `DEMO_DATASET` (`digits`, `shapes`: generated RGB images),
`DEMO_ARCHITECTURE` (`small_cnn`, `resnet18`, ...), `DEMO_IMAGE_SIZE`, `DEMO_EPOCHS`, e.g.
`make demo DEMO_DATASET=shapes DEMO_ARCHITECTURE=resnet18` (see `demo_conf`).
"""

from __future__ import annotations

import os
import sys
import time
import urllib.parse
from collections.abc import Mapping
from typing import Any

from .airflow_api import POLL_SECONDS, AirflowClient, AirflowError, DagRunResult, request_json
from .config import StackConfig
from .stack import Stack

PIPELINE = "mlflow_orchestration_pipeline"
MANAGEMENT = "model_management"
MODEL_NAME = "image-classifier"
# What a `shapes` demo trains unless DEMO_EPOCHS says otherwise: enough for the pipeline's
# min_accuracy on generated 32x32 RGB images (see the root README, "Bring your own data").
SHAPES_DEMO = {"dataset_count": 4000, "epochs": 8, "learning_rate": 0.01, "batch_size": 32}


class DemoFailed(RuntimeError):
    """A step of the demo failed; the message says which and why."""


def demo_conf(env: Mapping[str, str]) -> dict[str, Any]:
    """The pipeline run's params from DEMO_* variables; empty (the DAG's defaults) for digits."""
    conf: dict[str, Any] = {}
    source = env.get("DEMO_DATASET", "digits")
    if source != "digits":
        conf["dataset_source"] = source
        if source == "shapes":
            conf.update(SHAPES_DEMO)
    if env.get("DEMO_ARCHITECTURE"):
        conf["architecture"] = env["DEMO_ARCHITECTURE"]
    for variable, param in (("DEMO_IMAGE_SIZE", "image_size"), ("DEMO_EPOCHS", "epochs")):
        if env.get(variable):
            conf[param] = int(env[variable])
    return conf


def run_dag(
    client: AirflowClient, dag_id: str, timeout: float, conf: dict[str, Any] | None = None
) -> DagRunResult:
    """Trigger one run of a DAG, show task progress while it runs, fail with its logs."""
    client.wait_for_dag(dag_id)
    client.unpause(dag_id)
    run_id = client.trigger(dag_id, conf)
    print(f"\n> {dag_id}: triggered run {run_id}" + (f" with {conf}" if conf else ""))
    shown: dict[str, str] = {}

    def progress(_state: str, states: dict[str, str]) -> None:
        for task, state in states.items():
            if shown.get(task) != state and state not in {"none", "scheduled", "queued"}:
                print(f"    {task:<28} {state}", flush=True)
                shown[task] = state

    result = client.wait_for_run(dag_id, run_id, timeout=timeout, progress=progress)
    if result.state != "success":
        logs = "\n".join(
            f"--- {task} (last log lines) ---\n{text}" for task, text in result.failed_tasks.items()
        )
        raise DemoFailed(f"{dag_id} run {run_id} ended {result.state}.\n{logs}")
    print(f"  {dag_id} succeeded in {result.seconds:.1f} s")
    return result


def wait_until_served(cfg: StackConfig, version: str, timeout: float = 60.0) -> dict[str, Any]:
    """The serving service hot-swaps on its own; wait until it answers with `version`."""
    deadline = time.monotonic() + timeout
    model: dict[str, Any] = {}
    while time.monotonic() < deadline:
        try:
            model = request_json("GET", f"{cfg.serving_url}/v1/model")
            if str(model.get("version")) == version:
                return model
        except (AirflowError, OSError):
            pass
        time.sleep(POLL_SECONDS)
    raise DemoFailed(f"serving still answers with {model.get('version')!r}, expected {version}")


def summarize(cfg: StackConfig, timings: dict[str, float]) -> None:
    """Print what the pipeline produced, as seen through each service's API."""
    jobs = request_json("GET", f"{cfg.training_url}/v1/jobs")["jobs"]
    job = max(jobs, key=lambda j: j["created_at"])
    dataset = request_json("GET", f"{cfg.training_url}/v1/datasets/{job['dataset_id']}")
    name = urllib.parse.quote(MODEL_NAME)
    model = request_json(
        "GET",
        f"{cfg.mlflow_url}/api/2.0/mlflow/registered-models/get?name={name}",
        headers=cfg.mlflow_auth_header(),
    )["registered_model"]
    aliases = {a["alias"]: a["version"] for a in model.get("aliases", [])}
    production = aliases.get("production")
    if production is None:
        raise DemoFailed(f"no version of {MODEL_NAME} carries 'production'; aliases: {aliases}")
    served = wait_until_served(cfg, str(production))
    samples = request_json(
        "GET", f"{cfg.training_url}/v1/datasets/{dataset['dataset_id']}/samples?split=test&limit=8"
    )
    answer = request_json(
        "POST", f"{cfg.serving_url}/v1/predict", {"instances": samples["instances"]}
    )
    metrics = job.get("metrics") or {}
    params = job.get("params") or {}
    size, channels = dataset.get("image_size"), dataset.get("channels")
    print("\n== Summary ==")
    print(
        f"  dataset     {dataset['dataset_id']} ({dataset.get('source')}, "
        f"{len(dataset.get('classes') or [])} classes): {dataset['n_train']} train / "
        f"{dataset['n_test']} test images, sha256 {dataset['sha256'][:12]}"
    )
    print(
        f"  images      {size}x{size}, {channels} channel{'s' if channels != 1 else ''} "
        f"({'RGB' if channels == 3 else 'grayscale'})"
    )
    print(
        f"  training    job {job['job_id']}: {params.get('architecture')}, "
        f"{params.get('epochs')} epochs ({params.get('optimizer')}), test accuracy "
        f"{metrics.get('test_accuracy', float('nan')):.4f}, MLflow run {job['run_id']}"
    )
    print(
        f"  registry    {MODEL_NAME} version {job['model_version']} registered; aliases "
        + ", ".join(f"{k} -> v{v}" for k, v in sorted(aliases.items()))
    )
    print(
        f"  serving     version {served['version']} (alias {served.get('alias')}), "
        f"loaded at {served.get('loaded_at')}"
    )
    pairs = zip(answer["predictions"], samples["labels"], strict=True)
    print("  predictions " + "  ".join(f"{p} (true {t})" for p, t in pairs))
    print("  timings     " + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()))
    print(
        f"\n  Airflow  {cfg.airflow_url}/dags/{PIPELINE}   (login {cfg.airflow_user} / "
        f"{cfg.airflow_password})"
    )
    print(f"  MLflow   {cfg.mlflow_url}/#/models/{MODEL_NAME}")
    print(f"  serving  {cfg.serving_url}/docs")


def main(cfg: StackConfig) -> int:
    start = time.monotonic()
    stack = Stack(cfg)
    print("> starting the embedded stack")
    stack.up()
    timings = {"stack up": time.monotonic() - start}
    client = AirflowClient(cfg.airflow_url, cfg.airflow_user, cfg.airflow_password)
    conf = demo_conf(os.environ)
    try:
        # Anything but digits trains for minutes, not seconds.
        timeout = 600 if not conf else 3600
        timings[PIPELINE] = run_dag(client, PIPELINE, timeout=timeout, conf=conf).seconds
        timings[MANAGEMENT] = run_dag(client, MANAGEMENT, timeout=300).seconds
        summarize(cfg, timings)
    except (DemoFailed, AirflowError) as exc:
        print(f"\nDEMO FAILED: {exc}", file=sys.stderr)
        print(
            "The stack is still up for inspection: `make status`, `make logs`, `make down`.",
            file=sys.stderr,
        )
        return 1
    print(
        f"\nDemo finished in {time.monotonic() - start:.1f} s. The stack keeps running; "
        "`make down` stops it."
    )
    return 0
