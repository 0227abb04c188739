"""Model stage: the small CNN that classifies (N, 1, H, W) images in 0..1 into logits."""

from __future__ import annotations

import threading

import torch
from torch import nn


class SmallCNN(nn.Module):
    """Two 3x3 conv blocks and a linear head, sized for 8x8 digits (about 85k parameters).

    No dropout on purpose: it would draw from torch's process-wide RNG while training, which
    concurrent jobs share, and break "same seed, same model"; BatchNorm and weight decay
    regularise enough here.

    The pooling is adaptive so the same network accepts any input size; the output is raw
    logits (N, n_classes), softmax is left to the caller (the serving service).
    """

    def __init__(self, n_classes: int, channels: int = 32, hidden: int = 64) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, channels, kernel_size=3, padding=1),
            nn.BatchNorm2d(channels),
            nn.ReLU(),
            nn.Conv2d(channels, channels * 2, kernel_size=3, padding=1),
            nn.BatchNorm2d(channels * 2),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d((4, 4)),
        )
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(channels * 2 * 16, hidden),
            nn.ReLU(),
            nn.Linear(hidden, n_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


_INIT_LOCK = threading.Lock()


def build_model(n_classes: int, seed: int) -> SmallCNN:
    """A freshly initialised network; the same seed always gives the same weights.

    Initialisation draws from torch's global RNG, so it is serialised: two jobs starting at
    once must not interleave their draws.
    """
    if n_classes < 2:
        raise ValueError(f"a classifier needs at least 2 classes, got {n_classes}")
    with _INIT_LOCK:
        torch.manual_seed(seed)
        return SmallCNN(n_classes)


def pick_device() -> torch.device:
    """CUDA when present, else CPU (the default on the machines this runs on)."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
