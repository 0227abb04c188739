"""Training stage: fit a registered network on a dataset snapshot, deterministically under a seed.

`fit` is plain PyTorch (no MLflow, no HTTP): the job runner, the CLI (MLproject) and the
tests all call it, and it reports each epoch through a callback. Batches are read from disk
through a DataLoader (batches.py), evaluation runs in batches too: no split is ever loaded
whole. After every epoch the whole training state goes to `save_checkpoint` (if given), and
`resume` continues from such a state at the next epoch, bit for bit as if never stopped.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from training_service.batches import ImageSplitLike, augment, batch_loader
from training_service.data import Dataset
from training_service.networks.building import build_network, pick_device
from training_service.params import EpochResult, TrainingCancelled, TrainingParams

#: Images per evaluation batch (no gradients: larger than training batches is fine).
EVAL_BATCH_SIZE = 256
#: Added to the seed for the augmentation generator, so crops never mirror the batch order.
AUGMENTATION_SEED_OFFSET = 0x5EED


@dataclass
class TrainingResult:
    model: nn.Module
    history: list[EpochResult] = field(default_factory=list)
    confusion: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.int64))
    train_seconds: float = 0.0
    #: The epoch after which early stopping ended training (None: every epoch ran).
    stopped_early_at: int | None = None

    @property
    def final(self) -> EpochResult:
        return self.history[-1]


def private_generator(seed: int) -> torch.Generator:
    """A generator of the job's own, so concurrent jobs never share random state."""
    generator = torch.Generator()
    generator.manual_seed(seed)
    return generator


def make_optimizer(params: TrainingParams, model: nn.Module) -> torch.optim.Optimizer:
    weights = model.parameters()
    lr, decay = params.learning_rate, params.weight_decay
    if params.optimizer == "adamw":
        return torch.optim.AdamW(weights, lr=lr, weight_decay=decay)
    if params.optimizer == "adam":
        return torch.optim.Adam(weights, lr=lr, weight_decay=decay)
    if params.optimizer == "sgd":
        return torch.optim.SGD(weights, lr=lr, momentum=0.9, nesterov=True, weight_decay=decay)
    raise ValueError(f"unknown optimizer '{params.optimizer}'; use adamw, adam or sgd")


@torch.no_grad()
def fresh_network(dataset: Dataset, params: TrainingParams) -> nn.Module:
    """The job's network for this dataset's images and classes, initialised from its seed."""
    info = dataset.info
    return build_network(
        params.architecture,
        in_channels=info.channels,
        image_size=info.image_size,
        n_classes=len(dataset.classes),
        mean=info.mean,
        std=info.std,
        seed=params.seed,
    )


def evaluate(
    model: nn.Module, split: ImageSplitLike, n_classes: int, workers: int = 0
) -> tuple[float, float, np.ndarray]:
    """Loss, accuracy and confusion matrix (rows = true class) of a model on a split."""
    model.eval()
    device = next(model.parameters()).device
    total_loss, correct = 0.0, 0
    confusion = torch.zeros((n_classes, n_classes), dtype=torch.int64)
    for images, labels in batch_loader(split, EVAL_BATCH_SIZE, workers=workers):
        logits = model(images.to(device))
        labels = labels.to(device)
        total_loss += nn.functional.cross_entropy(logits, labels, reduction="sum").item()
        predicted = logits.argmax(dim=1)
        correct += int((predicted == labels).sum().item())
        confusion.index_put_(
            (labels.cpu(), predicted.cpu()), torch.ones_like(labels.cpu()), accumulate=True
        )
    count = max(1, len(split))
    return total_loss / count, correct / count, confusion.numpy()


def fit(
    dataset: Dataset,
    params: TrainingParams,
    on_epoch: Callable[[EpochResult], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    *,
    workers: int = 0,
    resume: dict[str, Any] | None = None,
    save_checkpoint: Callable[[dict[str, Any]], None] | None = None,
) -> TrainingResult:
    """Train a fresh network (or resume one) with a one-cycle schedule; evaluate every epoch.

    Early stopping (params.early_stopping_patience) watches the held-out split's loss.
    """
    train_split, test_split = dataset.split("train"), dataset.split("test")
    n_classes = len(dataset.classes)
    device = pick_device()
    model = fresh_network(dataset, params).to(device)
    order = private_generator(params.seed)
    crops = private_generator(params.seed + AUGMENTATION_SEED_OFFSET)
    batch_size = min(params.batch_size, len(train_split))
    optimizer = make_optimizer(params, model)
    # One-cycle warms up then anneals: robust to the learning rate and fast to converge.
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer,
        max_lr=params.learning_rate,
        epochs=params.epochs,
        steps_per_epoch=math.ceil(len(train_split) / batch_size),
    )
    result = TrainingResult(model=model)
    best_loss, stale_epochs, seconds_before = math.inf, 0, 0.0
    if resume is not None:
        model.load_state_dict(resume["model"])
        optimizer.load_state_dict(resume["optimizer"])
        scheduler.load_state_dict(resume["scheduler"])
        order.set_state(resume["order_generator"])
        crops.set_state(resume["augmentation_generator"])
        result.history = [EpochResult(**e) for e in resume["history"]]
        result.stopped_early_at = resume["stopped_early_at"]
        best_loss, stale_epochs = resume["best_loss"], resume["stale_epochs"]
        seconds_before = resume["train_seconds"]
    started = time.perf_counter()
    train_batches = batch_loader(train_split, batch_size, workers=workers, generator=order)
    first_epoch = len(result.history) + 1 if result.stopped_early_at is None else math.inf
    for epoch in range(int(min(first_epoch, params.epochs + 1)), params.epochs + 1):
        model.train()
        total_loss = 0.0
        for images, labels in train_batches:
            if should_stop is not None and should_stop():
                raise TrainingCancelled
            if params.augmentation:
                images = augment(images, crops)
            images, labels = images.to(device), labels.to(device)
            optimizer.zero_grad(set_to_none=True)
            loss = nn.functional.cross_entropy(model(images), labels)
            loss.backward()
            optimizer.step()
            scheduler.step()
            total_loss += loss.item() * len(labels)
        test_loss, test_accuracy, result.confusion = evaluate(model, test_split, n_classes, workers)
        epoch_result = EpochResult(epoch, total_loss / len(train_split), test_loss, test_accuracy)
        result.history.append(epoch_result)
        if test_loss < best_loss:
            best_loss, stale_epochs = test_loss, 0
        else:
            stale_epochs += 1
        patience = params.early_stopping_patience
        if patience is not None and stale_epochs >= patience and epoch < params.epochs:
            result.stopped_early_at = epoch
        if save_checkpoint is not None:
            save_checkpoint(
                {
                    "epoch": epoch,
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "order_generator": order.get_state(),
                    "augmentation_generator": crops.get_state(),
                    "history": [asdict(e) for e in result.history],
                    "best_loss": best_loss,
                    "stale_epochs": stale_epochs,
                    "stopped_early_at": result.stopped_early_at,
                    "train_seconds": seconds_before + time.perf_counter() - started,
                }
            )
        if on_epoch is not None:
            on_epoch(epoch_result)
        if result.stopped_early_at is not None:
            break
    if result.confusion.size == 0:  # resumed after the last epoch: nothing trained here
        _, _, result.confusion = evaluate(model, test_split, n_classes, workers)
    result.train_seconds = seconds_before + time.perf_counter() - started
    result.model = model.cpu().eval()
    return result
