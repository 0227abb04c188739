"""A network registered by a test, as a user would add one: this module plus one
`register_network("tiny_mlp", "custom_network:build")` line (tests/api/test_custom_network.py)."""

from __future__ import annotations

from torch import nn


def build(in_channels: int, image_size: int, n_classes: int) -> nn.Module:
    """Flatten -> 32 hidden units -> logits: any size and number of channels."""
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(in_channels * image_size * image_size, 32),
        nn.ReLU(),
        nn.Linear(32, n_classes),
    )
