"""
### mlflow_orchestration_pipeline

Every six hours: snapshot a data set, train a model on it, wait for the job, look the new model
version up in MLflow, score it through the serving service on held-out digits, and check that
every step produced what the next one needs and that accuracy >= `min_accuracy`.

The DAG holds no ML code: each step is a call to the training service, MLflow or the serving
service through the connections `training_service`, `mlflow` and `serving_service`.
`submit_training_job` sends `Idempotency-Key: <run_id>`, so a retried task never starts a
second job. The new version gets the `staging` alias from the training service;
`model_management` decides whether it goes to production.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import Param, dag, get_current_context, task
from airflow.sdk.exceptions import AirflowFailException
from orchestration import registry
from orchestration.alerts import PipelineAlertNotifier
from orchestration.findings import QUALITY_GATE_FAILED, CheckFailed, Finding
from orchestration.quality_gates import holdout_accuracy, missing_outputs
from orchestration.service_http import (
    SERVING_CONN_ID,
    TRAINING_CONN_ID,
    call_service,
    service_operator,
)
from orchestration.task_defaults import default_task_args
from orchestration.training_jobs import wait_for_training_job

# What each step must hand over for the run to count as a pipeline that worked end to end.
REQUIRED_OUTPUTS = {
    "create_dataset_snapshot": ["dataset_id", "sha256", "n_test"],
    "wait_for_training_job": ["job_id", "status", "model_version", "metrics"],
    "fetch_model_version": ["name", "version", "run_id"],
    "run_inference": ["version", "accuracy", "n_samples"],
}


@dag(
    dag_id="mlflow_orchestration_pipeline",
    schedule="0 */6 * * *",
    catchup=False,
    max_active_runs=1,
    tags=["mlops", "training", "mlflow"],
    doc_md=__doc__,
    default_args=default_task_args(on_failure_callback=[PipelineAlertNotifier()]),
    params={
        "dataset_source": Param("digits", type="string", enum=["digits", "folder"]),
        "dataset_path": Param(None, type=["null", "string"], description="folder source only"),
        "test_fraction": Param(0.2, type="number", exclusiveMinimum=0, exclusiveMaximum=1),
        "seed": Param(42, type="integer"),
        "epochs": Param(10, type="integer", minimum=1, maximum=200),
        "batch_size": Param(64, type="integer", minimum=1, maximum=4096),
        "learning_rate": Param(0.01, type="number", exclusiveMinimum=0, maximum=10),
        "holdout_samples": Param(200, type="integer", minimum=1, maximum=1024),
        "min_accuracy": Param(0.8, type="number", minimum=0, maximum=1),
    },
)
def mlflow_orchestration_pipeline() -> None:
    create_dataset_snapshot = service_operator(
        task_id="create_dataset_snapshot",
        conn_id=TRAINING_CONN_ID,
        endpoint="/v1/datasets",
        data=(
            "{{ {'source': params.dataset_source, 'path': params.dataset_path,"
            " 'test_fraction': params.test_fraction, 'seed': params.seed} | tojson }}"
        ),
    )

    submit_training_job = service_operator(
        task_id="submit_training_job",
        conn_id=TRAINING_CONN_ID,
        endpoint="/v1/train",
        data=(
            "{{ {'dataset_id': ti.xcom_pull(task_ids='create_dataset_snapshot')['dataset_id'],"
            " 'epochs': params.epochs, 'batch_size': params.batch_size,"
            " 'learning_rate': params.learning_rate, 'seed': params.seed,"
            " 'register': true} | tojson }}"
        ),
        # The run id names the job: a retry or a re-run of this task finds the same job.
        headers={"Idempotency-Key": "{{ run_id }}"},
    )

    wait_for_job = wait_for_training_job("wait_for_training_job", "submit_training_job")

    @task
    def fetch_holdout_samples(dataset: dict[str, Any]) -> dict[str, Any]:
        """Held-out (test split) digits of the snapshot, with their labels."""
        limit = get_current_context()["params"]["holdout_samples"]
        return call_service(
            TRAINING_CONN_ID,
            "GET",
            f"/v1/datasets/{dataset['dataset_id']}/samples",
            params={"split": "test", "limit": limit},
        )

    @task
    def fetch_model_version(job: dict[str, Any]) -> dict[str, Any]:
        """The registered version the job produced, as MLflow's registry describes it."""
        if not job.get("model_version"):
            raise AirflowFailException(
                f"job {job.get('job_id')} succeeded without registering a model version"
            )
        version = registry.get_model_version(job["model_name"], str(job["model_version"]))
        print(f"model {version['name']} v{version['version']}: tags={version['tags']}")
        return version

    @task
    def run_inference(model_version: dict[str, Any], samples: dict[str, Any]) -> dict[str, Any]:
        """Predict the held-out digits with exactly the new version and score the answers."""
        body = call_service(
            SERVING_CONN_ID,
            "POST",
            "/v1/predict",
            payload={"instances": samples["instances"], "version": model_version["version"]},
            bearer=True,
        )
        accuracy = holdout_accuracy(body["predictions"], samples["labels"])
        print(f"v{model_version['version']}: accuracy {accuracy:.4f} on {len(samples['labels'])}")
        return {
            "version": model_version["version"],
            "served_version": str(body.get("model", {}).get("version")),
            "n_samples": len(samples["labels"]),
            "accuracy": accuracy,
        }

    @task
    def validate_pipeline(
        dataset: dict[str, Any],
        job: dict[str, Any],
        model_version: dict[str, Any],
        inference: dict[str, Any],
    ) -> dict[str, Any]:
        """Gate: every step's output is there, versions agree, accuracy >= min_accuracy."""
        min_accuracy = get_current_context()["params"]["min_accuracy"]
        outputs = {
            "create_dataset_snapshot": dataset,
            "wait_for_training_job": job,
            "fetch_model_version": model_version,
            "run_inference": inference,
        }
        failures = [f"missing output {name}" for name in missing_outputs(outputs, REQUIRED_OUTPUTS)]
        if str(job.get("model_version")) != model_version.get("version"):
            failures.append(
                f"job registered v{job.get('model_version')}, MLflow returned "
                f"v{model_version.get('version')}"
            )
        if inference.get("served_version") != inference.get("version"):
            failures.append(
                f"serving answered with v{inference.get('served_version')} "
                f"instead of v{inference.get('version')}"
            )
        accuracy = inference.get("accuracy")
        if accuracy is not None and accuracy < min_accuracy:
            failures.append(f"held-out accuracy {accuracy:.4f} < min_accuracy {min_accuracy}")
        if failures:
            details = {
                "version": model_version.get("version"),
                "accuracy": accuracy,
                "min_accuracy": min_accuracy,
                "n_samples": inference.get("n_samples"),
            }
            finding = Finding(QUALITY_GATE_FAILED, "; ".join(failures), details)
            raise CheckFailed("pipeline validation failed", [finding])
        summary = {
            "dataset_id": dataset["dataset_id"],
            "job_id": job["job_id"],
            "model_version": model_version["version"],
            "train_test_accuracy": (job.get("metrics") or {}).get("test_accuracy"),
            "holdout_accuracy": accuracy,
        }
        print(f"pipeline OK: {summary}")
        return summary

    dataset = create_dataset_snapshot.output
    job = wait_for_job.output
    samples = fetch_holdout_samples(dataset)
    model_version = fetch_model_version(job)
    inference = run_inference(model_version, samples)

    create_dataset_snapshot >> submit_training_job >> wait_for_job
    validate_pipeline(dataset, job, model_version, inference)


mlflow_orchestration_pipeline()
