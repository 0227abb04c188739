"""The pipeline on the compose profile `scale`: Celery workers, replicas, the object store.

One scale stack (conftest.py) runs `mlflow_orchestration_pipeline` then `model_management`
through Airflow's REST API (`scale_promoted`), with the CeleryExecutor. Then:

- the new version is in `production` and every serving replica serves it (each asked from
  inside its own container: only the TLS proxy publishes), and predictions through the proxy
  and the load balancer score the held-out digits;
- the task instances of both runs ran on the two Celery workers, both of them (the hostname
  Airflow records for each task instance is its worker container's);
- the training submission took a slot of the pool `training`, which airflow-init created
  with TRAINING_POOL_SLOTS (default 1) slots;
- the run's artifacts and the registered model's files (MLflow 3 keeps them apart, under
  `<experiment>/models/m-*/`) are objects in the bucket `mlflow` of the object store (listed
  over S3 from inside an MLflow replica, with its keys; a wrong secret is refused), the same
  files MLflow's artifact API lists, and none is on an MLflow replica's local disk.
"""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

from scale_mlflow import artifact_paths, artifact_prefix, get_json, mlflow_run
from scale_stack import WORKERS, ScaleStack, hostname

from scripts.embedded.airflow_api import AirflowClient
from scripts.embedded.demo import MANAGEMENT, MODEL_NAME, PIPELINE

SERVING_REPLICAS = ("serving", "serving-2")
MLFLOW_REPLICAS = ("mlflow", "mlflow-2")
# Lists the bucket over S3 inside an MLflow replica, with the replica's own S3 settings
# (MLFLOW_S3_ENDPOINT_URL, AWS_*); argv[1]: a key prefix, argv[2] (optional): a secret key to
# use instead of the replica's. Prints the keys as JSON, or the S3 error code.
S3_LISTING = """
import json, os, sys
import boto3, botocore.exceptions
secret = sys.argv[2] if len(sys.argv) > 2 else os.environ["AWS_SECRET_ACCESS_KEY"]
s3 = boto3.client("s3", endpoint_url=os.environ["MLFLOW_S3_ENDPOINT_URL"],
                  aws_access_key_id=os.environ["AWS_ACCESS_KEY_ID"],
                  aws_secret_access_key=secret)
try:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket="mlflow", Prefix=sys.argv[1])
    print(json.dumps([item["Key"] for page in pages for item in page.get("Contents", [])]))
except botocore.exceptions.ClientError as exc:
    print(json.dumps({"error": exc.response["Error"]["Code"]}))
"""


def replica_json(stack: ScaleStack, name: str, port: int, path: str) -> Any:
    """GET a path of one replica from inside its container, on its own plain-HTTP port."""
    return json.loads(replica_text(stack, name, port, path))


def replica_text(stack: ScaleStack, name: str, port: int, path: str) -> str:
    """The body of GET path on one replica, from inside its container (plain HTTP)."""
    code = (
        "import sys, urllib.request; sys.stdout.write(urllib.request.urlopen("
        "f'http://127.0.0.1:{sys.argv[1]}{sys.argv[2]}', timeout=20).read().decode())"
    )
    exit_code, output = stack.exec(name, ["python", "-c", code, str(port), path], timeout=60)
    assert exit_code == 0, f"{name} GET {path} -> exit {exit_code}: {output[-500:]}"
    return output


def task_instances(airflow: AirflowClient, dag_id: str, run_id: str) -> list[dict[str, Any]]:
    quoted = urllib.parse.quote(run_id, safe="")
    answer = airflow.api("GET", f"/dags/{dag_id}/dagRuns/{quoted}/taskInstances")
    return list(answer["task_instances"])


def bucket_keys(stack: ScaleStack, prefix: str, secret: str | None = None) -> Any:
    argv = ["python", "-c", S3_LISTING, prefix, *([secret] if secret else [])]
    exit_code, output = stack.exec("mlflow-2", argv, timeout=60)
    assert exit_code == 0, f"S3 listing in mlflow-2 -> exit {exit_code}: {output[-800:]}"
    return json.loads(output.strip().splitlines()[-1])


def test_the_new_version_is_served_by_every_replica(
    scale_stack: ScaleStack,
    scale_urls: dict[str, str],
    scale_promoted: dict[str, Any],
    client_token: dict[str, str],
) -> None:
    http, version = scale_stack.http, scale_promoted["version"]
    model = get_json(
        http, f"{scale_urls['mlflow']}/api/2.0/mlflow/registered-models/get", name=MODEL_NAME
    )["registered_model"]
    assert {a["alias"]: a["version"] for a in model.get("aliases", [])}["production"] == version
    for name in SERVING_REPLICAS:
        served = replica_json(scale_stack, name, 5001, "/v1/model")
        assert str(served.get("version")) == version, (name, served)
    for name in MLFLOW_REPLICAS:
        # MLflow's /health answers plain text.
        assert replica_text(scale_stack, name, 5000, "/health").strip() == "OK", name
    samples = get_json(
        http,
        f"{scale_urls['training']}/v1/datasets/{scale_promoted['job']['dataset_id']}/samples",
        split="test",
        limit=200,
    )
    answer = http.post(
        f"{scale_urls['serving']}/v1/predict",
        json={"instances": samples["instances"]},
        headers=client_token,
        timeout=120,
    )
    assert answer.status_code == 200, answer.text[:500]
    predictions = answer.json()["predictions"]
    hits = sum(p == t for p, t in zip(predictions, samples["labels"], strict=True))
    assert hits / len(predictions) >= 0.9, f"{hits}/{len(predictions)} through the balancer"


def test_tasks_ran_on_both_celery_workers(
    scale_stack: ScaleStack, scale_airflow: AirflowClient, scale_promoted: dict[str, Any]
) -> None:
    workers = {hostname(scale_stack, name): name for name in WORKERS}
    ran_on: dict[str, list[str]] = {}
    for dag_id, run_id in (
        (PIPELINE, scale_promoted["pipeline_run_id"]),
        (MANAGEMENT, scale_promoted["management_run_id"]),
    ):
        for ti in task_instances(scale_airflow, dag_id, run_id):
            if ti["state"] == "success":
                where = workers.get(ti["hostname"] or "", f"not a worker: {ti['hostname']!r}")
                ran_on.setdefault(where, []).append(f"{dag_id}.{ti['task_id']}")
    assert set(ran_on) == set(WORKERS), f"tasks by worker: {ran_on}"


def test_the_training_submission_runs_in_the_training_pool(
    scale_airflow: AirflowClient, scale_promoted: dict[str, Any]
) -> None:
    pools = {
        ti["task_id"]: ti["pool"]
        for ti in task_instances(scale_airflow, PIPELINE, scale_promoted["pipeline_run_id"])
    }
    assert pools.pop("submit_training_job") == "training"
    assert set(pools.values()) == {"default_pool"}, pools
    pool = scale_airflow.api("GET", "/pools/training")
    assert pool["slots"] == 1, pool  # TRAINING_POOL_SLOTS' default, set by airflow-init


def test_artifacts_are_objects_in_the_bucket(
    scale_stack: ScaleStack, scale_urls: dict[str, str], scale_promoted: dict[str, Any]
) -> None:
    http, mlflow = scale_stack.http, scale_urls["mlflow"]
    run_id = scale_promoted["job"]["run_id"]
    run = mlflow_run(http, mlflow, run_id)
    version = get_json(
        http,
        f"{mlflow}/api/2.0/mlflow/model-versions/get",
        name=MODEL_NAME,
        version=scale_promoted["version"],
    )["model_version"]
    # MLflow 3 keeps a logged model's files apart from its run's: <experiment>/models/m-*/.
    model_id = version.get("model_id") or version["source"].removeprefix("models:/")
    quoted = urllib.parse.quote(model_id)
    model = get_json(http, f"{mlflow}/api/2.0/mlflow/logged-models/{quoted}")["model"]
    roots = {"run": run["info"]["artifact_uri"], "model": model["info"]["artifact_uri"]}
    listed: dict[str, set[str]] = {}
    for kind, root in roots.items():
        assert root.startswith("mlflow-artifacts:/"), root  # proxied: clients hold no S3 keys
        listed[kind] = set(artifact_paths(http, mlflow, root))
        in_bucket = bucket_keys(scale_stack, artifact_prefix(root))
        assert set(in_bucket) == listed[kind], (
            f"{kind}: bucket {sorted(in_bucket)} != MLflow {sorted(listed[kind])}"
        )
    assert {"classes.json", "confusion_matrix.png"} <= {p.rsplit("/", 1)[-1] for p in listed["run"]}
    assert any(path.endswith("/MLmodel") for path in listed["model"]), sorted(listed["model"])
    assert any(path.endswith(".pth") or "/data/" in path for path in listed["model"]), sorted(
        listed["model"]
    )
    prefix = artifact_prefix(roots["model"])
    assert bucket_keys(scale_stack, prefix, secret="0" * 48) == {"error": "SignatureDoesNotMatch"}
    for name in MLFLOW_REPLICAS:
        code, files = scale_stack.exec(name, ["find", "/mlflow/artifacts", "-type", "f"])
        assert (code, files.strip()) == (0, ""), f"{name} keeps artifacts on disk: {files[:500]}"
