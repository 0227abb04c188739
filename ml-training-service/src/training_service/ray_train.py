"""The training loop of one Ray Train worker: data-parallel `fit` over the job's snapshot.

Every worker (rank) builds the same network from the job's seed (DistributedDataParallel,
gloo on CPU, then keeps the replicas equal), reads its own shard of the training split
through a `DistributedSampler` over the same snapshot in DATA_DIR, and takes
batch_size // num_workers images per step, so the global batch is the job's `batch_size`.
Rank 0 alone evaluates on the test split, decides early stopping (broadcast to the others)
and talks to MLflow: the job is one run, with the same params, metrics, model and registry
tags as a local job, plus `num_workers` and `cpus_per_worker`. A stop request (cancel,
service shutdown) is read from the job's `JobControl` and agreed by all ranks at a batch.

The pieces of a step (network, optimizer, schedule, augmentation, evaluation, batches) are
train.py's and batches.py's; only the sharding and the collective decisions are new here.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import mlflow
import ray
import ray.train
import ray.train.torch
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import BatchSampler, DataLoader, DistributedSampler

from training_service.batches import SplitBatches, augment
from training_service.data import Dataset, DatasetStore
from training_service.jobs.records import JobOutcome, JobStatus
from training_service.logs import bound_request_id
from training_service.mlflow_client import MlflowUnavailableError
from training_service.networks import NETWORKS
from training_service.params import EpochResult, TrainingCancelled, TrainingParams
from training_service.ray_control import RayJobSpec
from training_service.ray_driver import CANCELLED
from training_service.registry import tag_and_promote
from training_service.tracking import tracked_run
from training_service.train import (
    AUGMENTATION_SEED_OFFSET,
    TrainingResult,
    evaluate,
    fresh_network,
    make_optimizer,
    private_generator,
)
from training_service.worker import CANCEL_POLL_SECONDS, configure_training, epoch_metrics


class _CollectiveStop:
    """True on every rank at the same batch once any rank has read a stop request."""

    def __init__(self, control: Any) -> None:
        self._control = control
        self._last_poll = 0.0
        self._seen = False

    def __call__(self) -> bool:
        now = time.monotonic()
        if not self._seen and now - self._last_poll >= CANCEL_POLL_SECONDS:
            self._last_poll = now
            self._seen = bool(ray.get(self._control.stop_requested.remote()))
        flag = torch.tensor([1.0 if self._seen else 0.0])
        if dist.is_initialized():
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return bool(flag.item() > 0)


def _shard_loader(
    dataset: Dataset, params: TrainingParams, rank: int, world: int, workers: int
) -> tuple[DataLoader[tuple[torch.Tensor, torch.Tensor]], DistributedSampler[int]]:
    batches = SplitBatches(dataset.split("train"))
    # The sampler only needs len() of what it samples: the row indices of the split.
    shard: DistributedSampler[int] = DistributedSampler(
        range(len(batches)),  # type: ignore[arg-type]
        num_replicas=world,
        rank=rank,
        shuffle=True,
        seed=params.seed,
    )
    per_rank = max(1, min(params.batch_size, len(batches)) // world)
    loader = DataLoader(
        batches,
        sampler=BatchSampler(shard, batch_size=per_rank, drop_last=False),
        batch_size=None,
        num_workers=workers,
        persistent_workers=workers > 0,
    )
    return loader, shard


def distributed_fit(
    dataset: Dataset,
    params: TrainingParams,
    *,
    should_stop: Callable[[], bool],
    on_epoch: Callable[[EpochResult], None] | None = None,
    workers: int = 0,
) -> TrainingResult:
    """`train.fit` across the Ray Train worker group; rank 0's result has the history."""
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    n_classes = len(dataset.classes)
    network = fresh_network(dataset, params)
    model = ray.train.torch.prepare_model(network)  # DDP (gloo) when world > 1
    loader, shard = _shard_loader(dataset, params, rank, world, workers)
    crops = private_generator(params.seed + AUGMENTATION_SEED_OFFSET + rank)
    optimizer = make_optimizer(params, model)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=params.learning_rate, epochs=params.epochs, steps_per_epoch=len(loader)
    )
    result = TrainingResult(model=network)
    best_loss, stale_epochs = math.inf, 0
    started = time.perf_counter()
    for epoch in range(1, params.epochs + 1):
        shard.set_epoch(epoch)
        model.train()
        totals = torch.zeros(2, dtype=torch.float64)  # summed loss, images
        for images, labels in loader:
            if should_stop():
                raise TrainingCancelled
            if params.augmentation:
                images = augment(images, crops)
            optimizer.zero_grad(set_to_none=True)
            loss = nn.functional.cross_entropy(model(images), labels)
            loss.backward()
            optimizer.step()
            scheduler.step()
            totals += torch.tensor([loss.item() * len(labels), len(labels)], dtype=torch.float64)
        if dist.is_initialized():
            dist.all_reduce(totals)
        decision = torch.zeros(1)
        if rank == 0:
            test_loss, test_accuracy, result.confusion = evaluate(
                network, dataset.split("test"), n_classes, workers
            )
            epoch_result = EpochResult(
                epoch, float(totals[0] / totals[1]), test_loss, test_accuracy
            )
            result.history.append(epoch_result)
            if test_loss < best_loss:
                best_loss, stale_epochs = test_loss, 0
            else:
                stale_epochs += 1
            patience = params.early_stopping_patience
            if patience is not None and stale_epochs >= patience and epoch < params.epochs:
                result.stopped_early_at = epoch
                decision[0] = 1.0
            if on_epoch is not None:
                on_epoch(epoch_result)
        if dist.is_initialized():
            dist.broadcast(decision, src=0)
        if decision.item() > 0:
            break
    result.train_seconds = time.perf_counter() - started
    result.model = network.cpu().eval()
    return result


def train_worker(config: dict[str, Any]) -> None:
    """Ray Train's `train_loop_per_worker`: config holds the `RayJobSpec` and `JobControl`."""
    spec: RayJobSpec = config["spec"]
    control = config["control"]
    job = spec.job
    params = TrainingParams(**job.params)
    NETWORKS.update(spec.networks)
    configure_training(spec.tracking_uri, params.cpus_per_worker, spec.mlflow_environment)
    dataset = DatasetStore(spec.datasets_dir).load(job.dataset_id)
    should_stop = _CollectiveStop(control)
    workers = spec.defaults.dataloader_workers
    if ray.train.get_context().get_world_rank() != 0:
        distributed_fit(dataset, params, should_stop=should_stop, workers=workers)
        return
    with bound_request_id(job.request_id):
        try:
            outcome = _train_and_track(spec, control, dataset, params, should_stop)
        except TrainingCancelled:
            ray.get(control.finished.remote(JobOutcome(JobStatus.CANCELLED, error=CANCELLED)))
            raise
        except MlflowUnavailableError as exc:
            failed = JobOutcome(
                JobStatus.FAILED,
                run_id=exc.run_id,
                error=str(exc),
                run_left_running=exc.run_left_running,
            )
            ray.get(control.finished.remote(failed))
            raise
        # Any other error reaches the driver in Ray Train's WorkerGroupError, beside the
        # other ranks' (when a peer died, rank 0 only sees gloo's "Connection reset").
    ray.get(control.finished.remote(outcome))


def _train_and_track(
    spec: RayJobSpec,
    control: Any,
    dataset: Dataset,
    params: TrainingParams,
    should_stop: Callable[[], bool],
) -> JobOutcome:
    job, defaults = spec.job, spec.defaults
    with tracked_run(defaults.experiment, run_name=job.job_id) as run:
        ray.get(control.run_started.remote(run.run_id))
        tags = {"job_id": job.job_id, "executor": "ray"}
        if job.request_id is not None:
            tags["request_id"] = job.request_id
        run.log_setup(dataset, params, tags=tags)
        mlflow.log_params(
            {"num_workers": params.num_workers, "cpus_per_worker": params.cpus_per_worker}
        )

        def epoch_done(epoch: EpochResult) -> None:
            run.log_epoch(epoch)
            control.epoch_finished.remote(epoch.epoch, epoch_metrics(epoch))

        result = distributed_fit(
            dataset,
            params,
            should_stop=should_stop,
            on_epoch=epoch_done,
            workers=defaults.dataloader_workers,
        )
        version = run.log_outcome(dataset, result, defaults.model_name if job.register else None)
        if version is not None:
            tag_and_promote(
                defaults.model_name,
                version,
                test_accuracy=result.final.test_accuracy,
                dataset=dataset,
                job_id=job.job_id,
            )
    return JobOutcome(
        JobStatus.SUCCEEDED,
        metrics=epoch_metrics(result.final),
        run_id=run.run_id,
        model_version=version,
        stopped_early_at=result.stopped_early_at,
    )
