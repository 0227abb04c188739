"""Building a network for a dataset: per-channel normalisation first, seeded weights.

The normalisation (x - mean) / std is the first layer of the network, so the logged model is
self-contained: it takes float32 pixels in 0..1 (N, C, H, W) and returns logits, and
`mlflow models serve` gives the same answers as the serving service.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import torch
from torch import nn

from training_service.networks import load_builder


class Normalize(nn.Module):
    """(x - mean) / std per channel; mean and std are buffers (saved, never trained)."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        if len(mean) != len(std):
            raise ValueError(f"mean has {len(mean)} channels, std {len(std)}")
        safe_std = [s if s > 1e-6 else 1.0 for s in std]  # a constant channel stays finite
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(safe_std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class Classifier(nn.Module):
    """`normalize` then the registered network (`body`): pixels in 0..1 -> logits."""

    def __init__(self, normalize: Normalize, body: nn.Module) -> None:
        super().__init__()
        self.normalize = normalize
        self.body = body

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(self.normalize(x))


_INIT_LOCK = threading.Lock()


def build_network(
    architecture: str,
    *,
    in_channels: int,
    image_size: int,
    n_classes: int,
    mean: Sequence[float],
    std: Sequence[float],
    seed: int,
) -> Classifier:
    """A freshly initialised network; the same seed always gives the same weights.

    Initialisation draws from torch's global RNG, so it is serialised: two jobs starting at
    once must not interleave their draws.
    """
    if n_classes < 2:
        raise ValueError(f"a classifier needs at least 2 classes, got {n_classes}")
    if len(mean) != in_channels:
        raise ValueError(f"{in_channels} channels but {len(mean)} normalisation means")
    builder = load_builder(architecture)
    with _INIT_LOCK:
        torch.manual_seed(seed)
        body = builder(in_channels, image_size, n_classes)
    return Classifier(Normalize(mean, std), body)


def pick_device() -> torch.device:
    """CUDA when present, else CPU (the default on the machines this runs on)."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
