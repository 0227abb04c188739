"""Training on the scale profile's Ray cluster (TRAINING_EXECUTOR=ray, issue #18).

The scale stack's training replicas (training, training-2 behind `lb`, their jobs in the
Postgres store) hand every job to the Ray cluster: ray-head (0 CPUs) and ray-worker,
ray-worker-2 (one CPU each). Through the TLS proxy, as a client would:

- a job with `num_workers: 2` lands within 0.02 of the same job on one worker (same data
  set, seed and epochs), and MLflow holds one run for it, with the worker count;
- a Ray worker container killed while its rank trains fails the job with an error naming
  the dead rank, and the job's MLflow run ends FAILED (never left RUNNING); the container is
  started again afterwards (`kill_container`);
- the head's dashboard answers HTTP, published on 127.0.0.1 only.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
from scale_mlflow import bearer, mlflow_run
from scale_stack import ScaleStack

#: Few epochs of the pipeline's digits: two workers must land within TOLERANCE of one.
EPOCHS, TOLERANCE, SEED = 3, 0.02, 5
ENDED = {"succeeded", "failed", "cancelled"}


def submit(stack: ScaleStack, dataset_id: str, **options: Any) -> str:
    body = {"dataset_id": dataset_id, "seed": SEED, "register": False, **options}
    answer = stack.http.post(
        f"{stack.url('training')}/v1/train",
        json=body,
        headers={
            **bearer(stack.variables["ORCHESTRATOR_TOKEN"]),
            "Idempotency-Key": uuid.uuid4().hex,
        },
    )
    assert answer.status_code == 202, f"POST /v1/train -> {answer.status_code}: {answer.text}"
    return str(answer.json()["job_id"])


def job(stack: ScaleStack, job_id: str) -> dict[str, Any]:
    answer = stack.http.get(f"{stack.url('training')}/v1/jobs/{job_id}")
    assert answer.status_code == 200, f"GET job {job_id} -> {answer.status_code}: {answer.text}"
    return dict(answer.json())


def wait_job(
    stack: ScaleStack, job_id: str, done: Callable[[dict[str, Any]], bool], timeout: float
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        state = job(stack, job_id)
        if done(state):
            return state
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} after {timeout:.0f} s: {state}")
        time.sleep(1)


def runs_tagged(http: httpx.Client, mlflow: str, experiment_id: str, job_id: str) -> list[Any]:
    answer = http.post(
        f"{mlflow}/api/2.0/mlflow/runs/search",
        json={"experiment_ids": [experiment_id], "filter": f"tags.job_id = '{job_id}'"},
    )
    assert answer.status_code == 200, answer.text[:300]
    return list(answer.json().get("runs", []))


def test_two_ray_workers_reach_the_accuracy_of_one_in_one_run(
    scale_stack: ScaleStack, scale_promoted: dict[str, Any]
) -> None:
    stack, mlflow = scale_stack, scale_stack.url("mlflow")
    dataset_id = scale_promoted["job"]["dataset_id"]
    jobs = {
        workers: wait_job(
            stack,
            submit(stack, dataset_id, epochs=EPOCHS, num_workers=workers),
            lambda state: state["status"] in ENDED,
            timeout=420,
        )
        for workers in (1, 2)
    }
    for workers, state in jobs.items():
        assert state["status"] == "succeeded", (workers, state)
        assert state["params"]["num_workers"] == workers, state["params"]
    one, two = (jobs[w]["metrics"]["test_accuracy"] for w in (1, 2))
    assert two >= 0.9, two
    assert abs(two - one) <= TOLERANCE, f"2 workers {two:.4f} vs 1 worker {one:.4f}"

    run = mlflow_run(stack.http, mlflow, jobs[2]["run_id"])
    params = {p["key"]: p["value"] for p in run["data"]["params"]}
    tags = {t["key"]: t["value"] for t in run["data"]["tags"]}
    assert run["info"]["status"] == "FINISHED"
    assert (params["num_workers"], tags["executor"]) == ("2", "ray"), (params, tags)
    experiment = run["info"]["experiment_id"]
    # Rank 0 alone logs: one run for the job, not one per worker.
    assert len(runs_tagged(stack.http, mlflow, experiment, jobs[2]["job_id"])) == 1


def test_a_killed_ray_worker_fails_the_job_and_ends_its_run(
    scale_stack: ScaleStack,
    scale_promoted: dict[str, Any],
    kill_container: Callable[[str], None],
) -> None:
    stack = scale_stack
    job_id = submit(stack, scale_promoted["job"]["dataset_id"], epochs=200, num_workers=2)
    running = wait_job(
        stack,
        job_id,
        lambda s: s["status"] in ENDED or (s.get("progress") or {}).get("epoch", 0) >= 1,
        timeout=300,
    )
    assert running["status"] == "running", running

    kill_container("ray-worker-2")  # the node of one rank dies, as a lost machine would

    ended = wait_job(stack, job_id, lambda s: s["status"] in ENDED, timeout=240)
    assert ended["status"] == "failed", ended
    error = ended["error"] or ""
    assert "Ray Train workers failed: rank" in error, error
    assert "Traceback" not in error and len(error) < 2000, error
    run = mlflow_run(stack.http, stack.url("mlflow"), ended["run_id"])
    assert run["info"]["status"] == "FAILED", run["info"]


def test_the_ray_dashboard_answers_on_loopback_only(scale_stack: ScaleStack) -> None:
    head = scale_stack.container("ray-head")
    bindings = head.attrs["NetworkSettings"]["Ports"]["8265/tcp"]
    assert {b["HostIp"] for b in bindings} == {"127.0.0.1"}, bindings
    port = bindings[0]["HostPort"]
    answer = httpx.get(f"http://127.0.0.1:{port}/api/version", timeout=30)
    assert answer.status_code == 200, answer.text[:300]
    assert answer.json()["ray_version"] == "2.60.0", answer.json()
