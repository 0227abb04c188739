"""What the scale benchmark measures on: serving's part of the compose profile `scale`, a model.

`start_serving_stack` starts, from docker-compose.yml with the switches of `make env SCALE=1`
(`ScaleStack`, tests/scale/scale_stack.py), only what serving needs: PostgreSQL, the object
store, Redis, MLflow, the TLS proxy, the load balancer `lb`, training (to make the model, on
its local executor), serving and serving-2; Airflow and Ray stay off, so they take no CPU from
the measurements.
`promote_digits_model` trains the digits CNN through the training service (it registers the
version and sets `staging`) and moves `production` to it through MLflow's REST API as the
orchestrator's login, as model_management would. `add_replica` starts serving-3, serving-4,
... from serving-2's definition (same image, settings and shared state), each reachable on
the stack's network by its name, as a load balancer finds it.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent / "tests" / "scale"), str(HERE.parent / "tests" / "containers")]
# Testcontainers reads these when it is imported (see tests/containers/conftest.py).
os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")
os.environ.setdefault("TESTCONTAINERS_HOST_OVERRIDE", "127.0.0.1")
os.environ.setdefault("TESTCONTAINERS_CONNECTION_MODE", "docker_host")

import docker  # noqa: E402 - after the settings above
from container_stack import ROOT, read_env_file, remove_leftovers, wait_for  # noqa: E402
from scale_stack import ScaleStack  # noqa: E402
from serving_replicas import replica_get, replica_ready  # noqa: E402

MODEL_NAME = "image-classifier"
SERVICES = (
    "proxy",
    "postgres",
    "objectstore",
    "redis",
    "mlflow",
    "lb",
    "training",
    "serving",
    "serving-2",
)


def start_serving_stack(client: docker.DockerClient, timeout: float = 480) -> ScaleStack:
    """The services above, from the images `make images` built (build/images.env)."""
    images = read_env_file(ROOT / "build" / "images.env")
    remove_leftovers(client)
    stack = ScaleStack(images, client)
    stack.services = {name: stack.services[name] for name in SERVICES}
    # The model is trained in the training container itself: no Ray cluster takes CPU here.
    stack.services["training"].environment.update({"TRAINING_EXECUTOR": "local", "RAY_ADDRESS": ""})
    try:
        stack.start(timeout=timeout)
    except Exception:
        print(stack.all_logs(tail=40), file=sys.stderr)
        stack.close()
        raise
    return stack


def _json(answer: Any, what: str) -> Any:
    if answer.status_code >= 300:
        raise RuntimeError(f"{what} -> {answer.status_code}: {answer.text[:500]}")
    return answer.json()


def promote_digits_model(stack: ScaleStack) -> tuple[str, list[Any]]:
    """Train and register the digits CNN, make it `production`; its version and one instance."""
    training, http = stack.url("training"), stack.http
    token = {"Authorization": f"Bearer {stack.variables['ORCHESTRATOR_TOKEN']}"}
    dataset = _json(
        http.post(f"{training}/v1/datasets", json={"source": "digits"}, headers=token),
        "POST /v1/datasets",
    )
    job = _json(
        http.post(
            f"{training}/v1/train",
            json={"dataset_id": dataset["dataset_id"], "register": True},
            headers=token,
        ),
        "POST /v1/train",
    )
    deadline = time.monotonic() + 600
    while (state := _json(http.get(f"{training}/v1/jobs/{job['job_id']}"), "job"))["status"] in {
        "queued",
        "running",
    }:
        if time.monotonic() > deadline:
            raise TimeoutError(f"training job still {state['status']} after 600 s")
        time.sleep(1)
    if state["status"] != "succeeded":
        raise RuntimeError(f"training job {state['status']}: {state.get('error')}")
    version = str(state["model_version"])
    _json(
        http.post(
            f"{stack.url('mlflow')}/api/2.0/mlflow/registered-models/alias",
            json={"name": MODEL_NAME, "alias": "production", "version": version},
            auth=("orchestrator", stack.variables["MLFLOW_ORCHESTRATOR_PASSWORD"]),
        ),
        "set alias production",
    )
    samples = _json(
        http.get(
            f"{training}/v1/datasets/{dataset['dataset_id']}/samples",
            params={"split": "test", "limit": 1},
        ),
        "samples",
    )
    return version, samples["instances"][0]


def serves(stack: ScaleStack, name: str, version: str) -> bool:
    """The replica is ready and serves `version`."""
    if not replica_ready(stack, name):
        return False
    return f'"version":"{version}"' in replica_get(stack, name, "/v1/model").replace(" ", "")


def add_replica(stack: ScaleStack, name: str, version: str) -> None:
    """Start another serving replica called `name` and wait until it serves `version`."""
    stack.services[name] = dataclasses.replace(stack.services["serving-2"], name=name)
    stack.run(stack.services[name])
    wait_for(f"{name} serving v{version}", lambda: serves(stack, name, version), timeout=300)
