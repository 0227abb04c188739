"""`small_cnn`: two 3x3 conv blocks and a linear head (the service's default network).

About 85k parameters at any size. Sized for 8x8 digits: at 8x8 it is exactly the network of
0.1 (no pooling before the adaptive 4x4 pooling). Larger inputs are halved by a 2x2 max pool
after a block while the side is above 16, at most twice (32 -> 16, 64 -> 32 -> 16), so a
32x32 or 64x64 image costs a few times an 8x8 one rather than 16-64 times; very large
inputs (224) are better served by a deeper network (`resnet18`).

No dropout on purpose: it would draw from torch's process-wide RNG while training, which
concurrent jobs share, and break "same seed, same model"; BatchNorm and weight decay
regularise enough here.
"""

from __future__ import annotations

import torch
from torch import nn


class SmallCNN(nn.Module):
    def __init__(
        self, in_channels: int, image_size: int, n_classes: int, width: int = 32, hidden: int = 64
    ) -> None:
        super().__init__()
        pools = 0
        side = image_size
        while side > 16 and pools < 2:
            side //= 2
            pools += 1
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, width, kernel_size=3, padding=1),
            nn.BatchNorm2d(width),
            nn.ReLU(),
        ]
        if pools >= 1:
            layers.append(nn.MaxPool2d(2))
        layers += [
            nn.Conv2d(width, width * 2, kernel_size=3, padding=1),
            nn.BatchNorm2d(width * 2),
            nn.ReLU(),
        ]
        if pools >= 2:
            layers.append(nn.MaxPool2d(2))
        layers.append(nn.AdaptiveAvgPool2d((4, 4)))
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(width * 2 * 16, hidden),
            nn.ReLU(),
            nn.Linear(hidden, n_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def build(in_channels: int, image_size: int, n_classes: int) -> SmallCNN:
    return SmallCNN(in_channels, image_size, n_classes)
