"""`resnet8` and `resnet20`: the CIFAR ResNets of He et al. 2016 (section 4.2), plain torch.

Depth 6n + 2: a 3x3 conv with 16 filters, then three stages of n basic blocks with 16, 32 and
64 filters on feature maps of side S, S/2 and S/4 (32, 16, 8 for 32x32 images), global
average pooling and one linear layer. n = 1 gives `resnet8` (78k parameters), n = 3
`resnet20` (0.27M). The shortcut is the paper's option A: the identity, and where a stage
halves the side and doubles the width, the input subsampled by 2 and zero-padded in
channels (no parameters). Batch norm after every conv, He (fan-out) initialisation.

These are the standard small networks for 32x32 images: at that size they keep full
resolution in the first stage (where `resnet18`'s ImageNet stem divides it by 4) and cost
about 12M (`resnet8`) and 41M (`resnet20`) multiply-adds per image, a few times less than
`resnet18` per step on a CPU and far fewer parameters to update. Any side works: the cost
grows with the side squared (no stem pooling), so above 64 pixels `resnet18` is cheaper.
"""

from __future__ import annotations

import torch
from torch import nn


class CifarBlock(nn.Module):
    """Two 3x3 conv + BN, ReLU; option-A shortcut (subsample and zero-pad) on a shape change."""

    def __init__(self, in_width: int, width: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_width, width, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU()
        self.stride = stride
        self.extra_channels = width - in_width

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride != 1:
            x = x[:, :, :: self.stride, :: self.stride]
        if self.extra_channels:
            x = nn.functional.pad(x, (0, 0, 0, 0, 0, self.extra_channels))
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    def __init__(self, in_channels: int, n_classes: int, blocks_per_stage: int) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU()
        )
        blocks: list[nn.Module] = []
        in_width = 16
        for stage, width in enumerate((16, 32, 64)):
            for block in range(blocks_per_stage):
                stride = 2 if stage > 0 and block == 0 else 1
                blocks.append(CifarBlock(in_width, width, stride))
                in_width = width
        self.stages = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_width, n_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.stages(self.stem(x))), 1))


def build_resnet8(in_channels: int, image_size: int, n_classes: int) -> CifarResNet:
    return CifarResNet(in_channels, n_classes, blocks_per_stage=1)


def build_resnet20(in_channels: int, image_size: int, n_classes: int) -> CifarResNet:
    return CifarResNet(in_channels, n_classes, blocks_per_stage=3)
