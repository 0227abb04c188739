"""The registry of named networks: architecture name -> "module:builder", torch-free.

The API process lists the names (the `architecture` enum of POST /v1/train) without
importing torch; a training process imports a builder only when a job asks for it.

A builder is `build(in_channels: int, image_size: int, n_classes: int) -> torch.nn.Module`:
it maps a float32 batch (N, in_channels, image_size, image_size), already normalised per
channel, to logits (N, n_classes). `building.build_network` puts the normalisation layer in
front and seeds the initialisation. Adding a network: write its module (here or in your
own package), then add one line to `NETWORKS` below, or call
`register_network("my_net", "my_package.my_net:build")` before the app starts.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from typing import Any

DEFAULT_ARCHITECTURE = "small_cnn"

NETWORKS: dict[str, str] = {
    "small_cnn": "training_service.networks.small_cnn:build",
    "resnet18": "training_service.networks.resnet:build_resnet18",
    "resnet8": "training_service.networks.cifar_resnet:build_resnet8",
    "resnet20": "training_service.networks.cifar_resnet:build_resnet20",
}

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
_TARGET = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


class UnknownNetworkError(ValueError):
    """No network is registered under this name."""


def register_network(name: str, target: str) -> None:
    """Register (or replace) `name` -> `target` ("package.module:callable")."""
    if not _NAME.match(name):
        raise ValueError(f"network name '{name}' must match {_NAME.pattern}")
    if not _TARGET.match(target):
        raise ValueError(f"network target '{target}' must look like 'package.module:callable'")
    NETWORKS[name] = target


def network_names() -> list[str]:
    """Registered architecture names, in registration order (the default first)."""
    return list(NETWORKS)


def check_architecture(name: str) -> str:
    """`name` if registered, else UnknownNetworkError saying which names exist."""
    if name not in NETWORKS:
        raise UnknownNetworkError(
            f"unknown architecture '{name}'; choose one of: {', '.join(NETWORKS)}"
        )
    return name


def load_builder(name: str) -> Callable[..., Any]:
    """Import and return the builder registered under `name` (imports torch)."""
    module_name, attribute = NETWORKS[check_architecture(name)].split(":")
    builder: Callable[..., Any] = getattr(importlib.import_module(module_name), attribute)
    return builder
