"""The networks registry and the registered networks: names, shapes, normalisation, seeds."""

from __future__ import annotations

import pytest
import torch

from training_service import networks
from training_service.networks import (
    UnknownNetworkError,
    check_architecture,
    load_builder,
    network_names,
    register_network,
)
from training_service.networks.building import build_network


def make(architecture: str, channels: int, size: int, seed: int = 0) -> torch.nn.Module:
    return build_network(
        architecture,
        in_channels=channels,
        image_size=size,
        n_classes=5,
        mean=[0.5] * channels,
        std=[0.25] * channels,
        seed=seed,
    )


def test_the_builtin_networks_are_registered_default_first() -> None:
    assert network_names()[:4] == ["small_cnn", "resnet18", "resnet8", "resnet20"]
    assert networks.DEFAULT_ARCHITECTURE == "small_cnn"


@pytest.mark.parametrize("architecture", ["small_cnn", "resnet18", "resnet8", "resnet20"])
@pytest.mark.parametrize(("channels", "size"), [(1, 8), (3, 32), (3, 64), (1, 28)])
def test_networks_map_any_size_and_channels_to_logits(
    architecture: str, channels: int, size: int
) -> None:
    model = make(architecture, channels, size).eval()
    with torch.no_grad():
        logits = model(torch.rand(3, channels, size, size))
    assert logits.shape == (3, 5)
    assert torch.isfinite(logits).all()


def test_resnet18_is_the_usual_resnet18() -> None:
    body = load_builder("resnet18")(3, 224, 1000)
    # torchvision's resnet18 has 11,689,512 parameters with 1000 classes.
    assert sum(p.numel() for p in body.parameters()) == 11_689_512
    assert len(body.stages) == 8  # BasicBlock x [2, 2, 2, 2]


@pytest.mark.parametrize(
    ("name", "blocks", "parameters"), [("resnet8", 3, 75_290), ("resnet20", 9, 269_722)]
)
def test_cifar_resnets_are_he_et_al_2016s(name: str, blocks: int, parameters: int) -> None:
    body = load_builder(name)(3, 32, 10)
    # Section 4.2: 6n+2 weighted layers, 16-32-64 filters, option-A (parameter-free)
    # shortcuts; ResNet-20 has 0.27M parameters on CIFAR-10.
    convs = [m for m in body.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) + 1 == 6 * (blocks // 3) + 2 and len(body.stages) == blocks
    assert all(c.kernel_size == (3, 3) for c in convs)
    assert sum(p.numel() for p in body.parameters()) == parameters
    sides = []
    body.stages.register_forward_hook(lambda _m, _i, out: sides.append(out.shape[1:]))
    body.eval()(torch.rand(1, 3, 32, 32))
    assert sides == [torch.Size([64, 8, 8])]


def test_small_cnn_on_digits_is_the_network_of_0_1() -> None:
    body = load_builder("small_cnn")(1, 8, 10)
    assert not any(isinstance(m, torch.nn.MaxPool2d) for m in body.modules())
    assert sum(p.numel() for p in body.parameters()) == 85_258


def test_the_first_layer_normalises_with_the_dataset_statistics() -> None:
    model = build_network(
        "small_cnn", in_channels=3, image_size=8, n_classes=2,
        mean=[0.1, 0.5, 0.9], std=[0.2, 0.3, 0.4], seed=0,
    ).eval()  # fmt: skip
    x = torch.rand(2, 3, 8, 8)
    mean = torch.tensor([0.1, 0.5, 0.9]).view(1, 3, 1, 1)
    std = torch.tensor([0.2, 0.3, 0.4]).view(1, 3, 1, 1)
    with torch.no_grad():
        assert torch.allclose(model(x), model.body((x - mean) / std))
    assert {"normalize.mean", "normalize.std"} <= set(model.state_dict())


def test_same_seed_same_initial_weights() -> None:
    a, b, c = make("small_cnn", 3, 32, 1), make("small_cnn", 3, 32, 1), make("small_cnn", 3, 32, 2)
    for wa, wb in zip(a.state_dict().values(), b.state_dict().values(), strict=True):
        assert torch.equal(wa, wb)
    assert not torch.equal(a.body.head[-1].weight, c.body.head[-1].weight)


def test_a_classifier_needs_two_classes() -> None:
    with pytest.raises(ValueError, match="at least 2 classes"):
        build_network("small_cnn", in_channels=1, image_size=8, n_classes=1,
                      mean=[0.5], std=[0.2], seed=0)  # fmt: skip


def test_unknown_names_list_the_registered_ones() -> None:
    with pytest.raises(
        UnknownNetworkError, match="choose one of: small_cnn, resnet18, resnet8, resnet20"
    ):
        check_architecture("vgg16")


def test_register_network_checks_name_and_target(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(networks, "NETWORKS", dict(networks.NETWORKS))
    with pytest.raises(ValueError, match="network name"):
        register_network("Bad Name", "x:y")
    with pytest.raises(ValueError, match="package.module:callable"):
        register_network("fine", "no_colon")
    register_network("tiny", "training_service.networks.small_cnn:build")
    assert "tiny" in network_names()
    assert load_builder("tiny") is load_builder("small_cnn")
