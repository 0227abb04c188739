"""`resnet18`: the usual ResNet-18 (He et al. 2015) in plain torch (torchvision is not usable
beside the local CPU torch wheel).

BasicBlock x [2, 2, 2, 2], widths 64-128-256-512, batch norm, identity shortcuts (1x1 conv
+ BN when the shape changes), global average pooling and one linear layer: 11.2M parameters.

The stem is the paper's (7x7 conv stride 2, 3x3 max pool stride 2: /4) for images of 32
pixels and more, so a 32x32 image reaches the four stages at 8, 4, 2, 1 pixels: on a
2-core CPU that trains about 4 times faster than the full-resolution "CIFAR" stem and still
separates the shapes data set (measured in benchmarks/). Below 32 pixels (8x8 digits) the
stem is a 3x3 conv stride 1 without pooling (the only departure from the paper), else the
stages would see less than one pixel.
"""

from __future__ import annotations

import torch
from torch import nn


class BasicBlock(nn.Module):
    def __init__(self, in_width: int, width: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_width, width, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU()
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_width != width:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_width, width, 1, stride=stride, bias=False), nn.BatchNorm2d(width)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


def stem(in_channels: int, image_size: int) -> nn.Sequential:
    """The first layers, chosen by input size (see the module docstring)."""
    if image_size >= 32:
        return nn.Sequential(
            nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False),
            nn.BatchNorm2d(64),
            nn.ReLU(),
            nn.MaxPool2d(3, stride=2, padding=1),
        )
    return nn.Sequential(
        nn.Conv2d(in_channels, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64), nn.ReLU()
    )


class ResNet(nn.Module):
    def __init__(
        self, in_channels: int, image_size: int, n_classes: int, blocks: tuple[int, ...]
    ) -> None:
        super().__init__()
        self.stem = stem(in_channels, image_size)
        stages: list[nn.Module] = []
        in_width = 64
        for index, count in enumerate(blocks):
            width = 64 * 2**index
            for block in range(count):
                stride = 2 if index > 0 and block == 0 else 1
                stages.append(BasicBlock(in_width, width, stride))
                in_width = width
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_width, n_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.stages(self.stem(x))), 1))


def build_resnet18(in_channels: int, image_size: int, n_classes: int) -> ResNet:
    return ResNet(in_channels, image_size, n_classes, blocks=(2, 2, 2, 2))
