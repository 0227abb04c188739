"""
### mlflow_orchestration_pipeline

Every six hours (or when triggered): get a dataset, train a model on it, wait for the job,
look the new model version up in MLflow, score it through the serving service on the
dataset's held-out images, and check that every step produced what the next one needs and
that accuracy >= `min_accuracy`.

**Params** (trigger with a config, or the form in the UI; defaults: today's 8x8 digits run).
The dataset: `dataset_id` trains on a dataset that exists already (an uploaded archive:
`POST /v1/datasets` with a `.zip`/`.tar.gz`, see the root README, "Bring your own data and
model"); without it, `dataset_source` builds a new snapshot: `digits` (8x8 grayscale),
`shapes` (generated RGB shapes, `dataset_count` images) or `folder` (`dataset_path` under the
training service's `DATA_DIR`), at `image_size` x `image_size` with `channels` (null: from the
data). The training: `architecture` (a network registered in the training service, e.g.
`small_cnn`, `resnet18`, `resnet8`, `resnet20`), `optimizer`, `epochs`, `batch_size`,
`learning_rate`, `weight_decay`, `augmentation`, `early_stopping_patience`, `seed`. A value
outside a param's schema is refused when the run is triggered; a value the service refuses (an
unknown architecture, `image_size` on digits) fails its task with the service's 422 detail.

The DAG holds no ML code: each step is a call to the training service, MLflow or the serving
service through the connections `training_service`, `mlflow` and `serving_service`, and each
step hands its answer to the next as an XComArg. `prepare_dataset` creates the snapshot
(`POST /v1/datasets`) or fetches the given one (`GET /v1/datasets/{id}`). `check_training_ready`
stops the run before a job is submitted while the training service cannot reach MLflow.
`prepare_dataset` and `submit_training_job` send `Idempotency-Key: <run_id>`: a retried task
never makes a second snapshot or job, and a cleared run whose job failed reuses its snapshot for
a new job. `submit_training_job` runs in the Airflow pool `training` (TRAINING_POOL_SLOTS slots,
default 1): concurrent runs submit their jobs one at a time. The wait for the job is deferred
to the triggerer, for at most `job_timeout_minutes`.
`run_inference` fetches `holdout_samples` test-split images (C x H x W, any size and colour) and
has serving score them with exactly the new version. The new version gets the `staging` alias
from the training service; `model_management` decides whether it goes to production.

When `validate_pipeline` passes, it updates the asset `image-classifier-staging`
(`models:/image-classifier@staging`) with the version and run in the event's extra:
`model_management` is scheduled on that asset. Alerts: failures and retries of every task,
the run's success, and a run still going `PIPELINE_DEADLINE_MINUTES` (default 30) after it
was queued (a deadline the scheduler checks) go to the `alert_webhook` connection.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import Param, dag, get_current_context, task
from airflow.sdk.exceptions import AirflowFailException
from orchestration import datasets, holdout, registry
from orchestration.alerts import RunSucceededNotifier, task_alert_callbacks
from orchestration.assets import STAGING_MODEL, staging_event_extra
from orchestration.findings import CheckFailed
from orchestration.quality_gates import holdout_accuracy, pipeline_finding, pipeline_summary
from orchestration.run_deadline import run_deadline
from orchestration.service_http import TRAINING_CONN_ID, call_service, service_operator
from orchestration.task_defaults import TRAINING_POOL, default_task_args
from orchestration.training_jobs import training_job_sensor

# The training service's networks (its TrainRequest.architecture enum): proposed in the
# trigger form; a network registered there later is accepted too (the service checks names).
ARCHITECTURES = ["small_cnn", "resnet18", "resnet8", "resnet20"]


@dag(
    dag_id="mlflow_orchestration_pipeline",
    schedule="0 */6 * * *",
    catchup=False,
    max_active_runs=1,
    tags=["mlops", "training", "mlflow"],
    doc_md=__doc__,
    default_args=default_task_args(**task_alert_callbacks()),
    on_success_callback=[RunSucceededNotifier()],
    deadline=run_deadline(),  # evaluated by the scheduler; interval fixed at parse time
    # Schemas and defaults of the run params. The function's arguments repeat the defaults
    # (Airflow requires them) and pass each param to the tasks, resolved per run.
    params={
        "dataset_id": Param(
            None,
            type=["null", "string"],
            minLength=1,
            maxLength=64,
            description="train on this existing dataset (e.g. an uploaded archive); "
            "dataset_source and its options are then not used",
        ),
        "dataset_source": Param("digits", type="string", enum=["digits", "shapes", "folder"]),
        "dataset_path": Param(None, type=["null", "string"], description="folder source only"),
        "dataset_count": Param(
            None,
            type=["null", "integer"],
            minimum=10,
            maximum=1_000_000,
            description="shapes source only: images to generate (null: the service's 2,000)",
        ),
        "image_size": Param(
            None,
            type=["null", "integer"],
            minimum=8,
            maximum=512,
            description="square side (null: from the data; digits are always 8)",
        ),
        "channels": Param(
            None,
            type=["null", "integer"],
            enum=[None, 1, 3],
            description="1 (grayscale) or 3 (RGB); null: from the data",
        ),
        "test_fraction": Param(0.2, type="number", exclusiveMinimum=0, exclusiveMaximum=1),
        "seed": Param(42, type="integer", minimum=0, maximum=2**32 - 1),
        "architecture": Param(
            "small_cnn",
            type="string",
            pattern="^[A-Za-z0-9_.-]{1,64}$",
            examples=ARCHITECTURES,
            description="a network registered in the training service",
        ),
        "optimizer": Param("adamw", type="string", enum=["adamw", "adam", "sgd"]),
        "epochs": Param(10, type="integer", minimum=1, maximum=200),
        "batch_size": Param(64, type="integer", minimum=1, maximum=4096),
        "learning_rate": Param(0.01, type="number", exclusiveMinimum=0, maximum=10),
        "weight_decay": Param(0.0001, type="number", minimum=0, maximum=1),
        "augmentation": Param(False, type="boolean", description="random crop and flip"),
        "early_stopping_patience": Param(
            None,
            type=["null", "integer"],
            minimum=1,
            maximum=200,
            description="epochs without a better held-out loss before stopping; null: off",
        ),
        "holdout_samples": Param(200, type="integer", minimum=1, maximum=1024),
        "min_accuracy": Param(0.8, type="number", minimum=0, maximum=1),
        "job_timeout_minutes": Param(60, type="integer", minimum=1, maximum=24 * 60),
    },
)
def mlflow_orchestration_pipeline(
    dataset_id: str | None = None,
    dataset_source: str = "digits",
    dataset_path: str | None = None,
    dataset_count: int | None = None,
    image_size: int | None = None,
    channels: int | None = None,
    test_fraction: float = 0.2,
    seed: int = 42,
    architecture: str = "small_cnn",
    optimizer: str = "adamw",
    epochs: int = 10,
    batch_size: int = 64,
    learning_rate: float = 0.01,
    weight_decay: float = 0.0001,
    augmentation: bool = False,
    early_stopping_patience: int | None = None,
    holdout_samples: int = 200,
    min_accuracy: float = 0.8,
    job_timeout_minutes: int = 60,
) -> None:
    @task(multiple_outputs=True)
    def prepare_dataset(
        dataset_id: str | None,
        source: str,
        path: str | None,
        count: int | None,
        image_size: int | None,
        channels: int | None,
        test_fraction: float,
        seed: int,
    ) -> dict[str, Any]:
        """The run's dataset: `dataset_id`'s if given, else a new snapshot of `source`."""
        request = datasets.snapshot_request(
            source,
            path=path,
            count=count,
            image_size=image_size,
            channels=channels,
            test_fraction=test_fraction,
            seed=seed,
        )
        return datasets.prepare_dataset(dataset_id, request, get_current_context()["run_id"])

    @task
    def check_training_ready() -> None:
        """The training service can reach MLflow (``/ready``); a 503 fails with its detail."""
        call_service(TRAINING_CONN_ID, "GET", "/ready")

    dataset = prepare_dataset(
        dataset_id,
        dataset_source,
        dataset_path,
        dataset_count,
        image_size,
        channels,
        test_fraction,
        seed,
    )

    submit_training_job = service_operator(
        task_id="submit_training_job",
        conn_id=TRAINING_CONN_ID,
        endpoint="/v1/train",
        body={
            "dataset_id": dataset["dataset_id"],
            "architecture": architecture,
            "optimizer": optimizer,
            "epochs": epochs,
            "batch_size": batch_size,
            "learning_rate": learning_rate,
            "weight_decay": weight_decay,
            "augmentation": augmentation,
            "early_stopping_patience": early_stopping_patience,
            "seed": seed,
            "register": True,
        },
        # The run id names the job: a retry finds the same job; once that job failed, a
        # cleared run starts a new one.
        headers={"Idempotency-Key": "{{ run_id }}"},
        # At most TRAINING_POOL_SLOTS submissions at once, whichever runs and workers ask.
        pool=TRAINING_POOL,
    )

    # Deferred: the triggerer polls the job, for at most job_timeout_minutes.
    wait_for_training_job = training_job_sensor(
        "wait_for_training_job", submit_training_job.output["status_url"], job_timeout_minutes
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
    def run_inference(
        model_version: dict[str, Any], dataset: dict[str, Any], limit: int
    ) -> dict[str, Any]:
        """Predict `limit` held-out images of the dataset with exactly the new version.

        The images are fetched here, not passed in by XCom: RGB images at 64 px and up make
        megabytes of JSON, which belong in a request body, not in Airflow's database.
        """
        samples = holdout.fetch_holdout_samples(dataset["dataset_id"], limit)
        body = holdout.predict_with_version(samples["instances"], model_version["version"])
        accuracy = holdout_accuracy(body["predictions"], samples["labels"])
        print(f"v{model_version['version']}: accuracy {accuracy:.4f} on {len(samples['labels'])}")
        return {
            "version": model_version["version"],
            "served_version": str(body.get("model", {}).get("version")),
            "n_samples": len(samples["labels"]),
            "accuracy": accuracy,
        }

    @task(outlets=[STAGING_MODEL])
    def validate_pipeline(
        dataset: dict[str, Any],
        job: dict[str, Any],
        model_version: dict[str, Any],
        inference: dict[str, Any],
        min_accuracy: float,
    ) -> dict[str, Any]:
        """Gate: every step's output is there, versions agree, accuracy >= min_accuracy.

        On success the staging model asset gets an event (its outlet), with the version.
        """
        outputs = (dataset, job, model_version, inference)
        if finding := pipeline_finding(*outputs, min_accuracy=min_accuracy):
            raise CheckFailed("pipeline validation failed", [finding])
        summary = pipeline_summary(*outputs)
        print(f"pipeline OK: {summary}")
        context = get_current_context()
        context["outlet_events"][STAGING_MODEL].extra = staging_event_extra(
            summary, job["model_name"], context["run_id"]
        )
        return summary

    # The operators above are wired by the XComArgs they take; the tasks below, likewise.
    check_training_ready() >> submit_training_job  # a job submitted now could not register
    job = wait_for_training_job.output
    model_version = fetch_model_version(job)
    inference = run_inference(model_version, dataset, holdout_samples)
    validate_pipeline(dataset, job, model_version, inference, min_accuracy)


mlflow_orchestration_pipeline()
