"""
### simple_image_classifier

The shortest path through the platform, for a first look: train a classifier on the 8x8
digits, wait for the job, then predict `n_images` held-out images through the serving service
and print the predictions next to the true labels. Run it by hand (no schedule).

Connections: `training_service`, `serving_service`.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import Param, dag, task
from orchestration.service_http import (
    SERVING_CONN_ID,
    TRAINING_CONN_ID,
    call_service,
    service_operator,
)
from orchestration.task_defaults import TRAINING_POOL, default_task_args
from orchestration.training_jobs import training_job_sensor


@dag(
    dag_id="simple_image_classifier",
    schedule=None,
    catchup=False,
    tags=["example", "training"],
    doc_md=__doc__,
    default_args=default_task_args(),
    # Schemas and defaults of the run params. The function's arguments repeat the defaults
    # (Airflow requires them) and pass each param to the tasks, resolved per run.
    params={
        "epochs": Param(5, type="integer", minimum=1, maximum=200),
        "n_images": Param(3, type="integer", minimum=1, maximum=32),
    },
)
def simple_image_classifier(epochs: int = 5, n_images: int = 3) -> None:
    # No dataset_id: the training service snapshots the built-in digits itself.
    start_training = service_operator(
        task_id="start_training",
        conn_id=TRAINING_CONN_ID,
        endpoint="/v1/train",
        body={"dataset_id": None, "epochs": epochs, "register": True},
        headers={"Idempotency-Key": "{{ run_id }}"},
        pool=TRAINING_POOL,
    )
    wait_for_training = training_job_sensor(
        "wait_for_training", start_training.output["status_url"]
    )

    @task
    def predict_sample_images(job: dict[str, Any], n_images: int) -> list[dict[str, Any]]:
        """Send a few held-out digits to the new model version and print what it says."""
        dataset_id = job.get("dataset_id")
        if not dataset_id:  # an older service may not report it: snapshot the same digits
            dataset_id = call_service(
                TRAINING_CONN_ID,
                "POST",
                "/v1/datasets",
                payload={"source": "digits"},
                headers={"Idempotency-Key": f"samples-of-{job['job_id']}"},  # one per job
                bearer=True,
            )["dataset_id"]
        samples = call_service(
            TRAINING_CONN_ID,
            "GET",
            f"/v1/datasets/{dataset_id}/samples",
            params={"split": "test", "limit": n_images},
        )
        body = call_service(
            SERVING_CONN_ID,
            "POST",
            "/v1/predict",
            payload={"instances": samples["instances"], "version": job["model_version"]},
            bearer=True,
        )
        rows = []
        for index, (predicted, label) in enumerate(
            zip(body["predictions"], samples["labels"], strict=True)
        ):
            print(f"image {index}: predicted {predicted}, true label {label}")
            rows.append({"image": index, "predicted": predicted, "label": label})
        return rows

    predict_sample_images(wait_for_training.output, n_images)


simple_image_classifier()
