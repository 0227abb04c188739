"""Training stage: fit the CNN on a dataset snapshot, deterministically under a seed.

`fit` is plain PyTorch (no MLflow, no HTTP): the job runner, the CLI (MLproject) and the
tests all call it, and it reports each epoch through a callback.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from training_service.data import Dataset
from training_service.model import SmallCNN, build_model, pick_device
from training_service.params import EpochResult, TrainingCancelled, TrainingParams


@dataclass
class TrainingResult:
    model: SmallCNN
    history: list[EpochResult] = field(default_factory=list)
    confusion: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.int64))
    train_seconds: float = 0.0

    @property
    def final(self) -> EpochResult:
        return self.history[-1]


def batch_order_generator(seed: int) -> torch.Generator:
    """A private generator for shuffling, so concurrent jobs never share random state."""
    generator = torch.Generator()
    generator.manual_seed(seed)
    return generator


@torch.no_grad()
def evaluate(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, n_classes: int
) -> tuple[float, float, np.ndarray]:
    """Loss, accuracy and confusion matrix (rows = true class) of a model on a split."""
    model.eval()
    logits = model(x)
    loss = nn.functional.cross_entropy(logits, y).item()
    predicted = logits.argmax(dim=1)
    accuracy = (predicted == y).float().mean().item()
    confusion = torch.zeros((n_classes, n_classes), dtype=torch.int64)
    confusion.index_put_((y.cpu(), predicted.cpu()), torch.ones_like(y.cpu()), accumulate=True)
    return loss, accuracy, confusion.numpy()


def fit(
    dataset: Dataset,
    params: TrainingParams,
    on_epoch: Callable[[EpochResult], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> TrainingResult:
    """Train a fresh CNN with AdamW and a one-cycle schedule; evaluate after every epoch."""
    generator = batch_order_generator(params.seed)
    device = pick_device()
    n_classes = len(dataset.classes)
    model = build_model(n_classes, params.seed).to(device)
    x_train = torch.from_numpy(dataset.x_train).to(device)
    y_train = torch.from_numpy(dataset.y_train).to(device)
    x_test = torch.from_numpy(dataset.x_test).to(device)
    y_test = torch.from_numpy(dataset.y_test).to(device)
    batch_size = min(params.batch_size, len(y_train))
    steps_per_epoch = -(-len(y_train) // batch_size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=params.learning_rate, weight_decay=1e-4)
    # One-cycle warms up then anneals: robust to the learning rate and fast to converge.
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer,
        max_lr=params.learning_rate,
        epochs=params.epochs,
        steps_per_epoch=steps_per_epoch,
    )
    result = TrainingResult(model=model)
    started = time.perf_counter()
    for epoch in range(1, params.epochs + 1):
        model.train()
        order = torch.randperm(len(y_train), generator=generator).to(device)
        total_loss = 0.0
        for start in range(0, len(order), batch_size):
            if should_stop is not None and should_stop():
                raise TrainingCancelled
            index = order[start : start + batch_size]
            optimizer.zero_grad(set_to_none=True)
            loss = nn.functional.cross_entropy(model(x_train[index]), y_train[index])
            loss.backward()
            optimizer.step()
            scheduler.step()
            total_loss += loss.item() * len(index)
        test_loss, test_accuracy, result.confusion = evaluate(model, x_test, y_test, n_classes)
        epoch_result = EpochResult(epoch, total_loss / len(order), test_loss, test_accuracy)
        result.history.append(epoch_result)
        if on_epoch is not None:
            on_epoch(epoch_result)
    result.train_seconds = time.perf_counter() - started
    result.model = model.cpu().eval()
    return result
