"""Evaluation figures logged as MLflow artifacts: confusion matrix and training curve."""

from __future__ import annotations

import io
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")  # no display on servers; must precede pyplot
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from training_service.params import EpochResult  # noqa: E402


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(figure)
    return buffer.getvalue()


def confusion_matrix_png(confusion: np.ndarray, classes: Sequence[str]) -> bytes:
    """Counts per (true, predicted) class, annotated, as a PNG."""
    figure, axes = plt.subplots(figsize=(1 + 0.5 * len(classes), 1 + 0.5 * len(classes)))
    axes.imshow(confusion, cmap="Blues")
    axes.set_xticks(range(len(classes)), labels=list(classes))
    axes.set_yticks(range(len(classes)), labels=list(classes))
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    threshold = confusion.max() / 2 if confusion.size else 0
    for (row, column), count in np.ndenumerate(confusion):
        color = "white" if count > threshold else "black"
        axes.text(column, row, str(count), ha="center", va="center", color=color, fontsize=8)
    axes.set_title("confusion matrix (test split)")
    return _png(figure)


def training_curve_png(history: Sequence[EpochResult]) -> bytes:
    """Train/test loss and test accuracy per epoch, as a PNG."""
    epochs = [h.epoch for h in history]
    figure, (loss_axes, accuracy_axes) = plt.subplots(1, 2, figsize=(9, 3.5))
    loss_axes.plot(epochs, [h.train_loss for h in history], marker="o", label="train")
    loss_axes.plot(epochs, [h.test_loss for h in history], marker="o", label="test")
    loss_axes.set_xlabel("epoch")
    loss_axes.set_ylabel("cross-entropy loss")
    loss_axes.legend()
    accuracy_axes.plot(epochs, [h.test_accuracy for h in history], marker="o", color="tab:green")
    accuracy_axes.set_xlabel("epoch")
    accuracy_axes.set_ylabel("test accuracy")
    figure.suptitle("training curve")
    return _png(figure)
