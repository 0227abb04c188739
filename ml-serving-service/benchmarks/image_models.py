"""The image models the image benchmarks serve, registered the way ml-training-service does.

- `training_service_model`: the model ml-training-service trains on its generated `shapes`
  data at 32x32 RGB, by its own command line (`--source shapes --architecture ...`, from its
  subtree and venv); the held-out images are its dataset snapshot's test split. Preferred.
- `own_model`: the bench's own plain-torch networks (`SmallCNN`, and `ResNet18` for the heavy
  case), normalisation as their first layer, logged with mlflow.pytorch (pt2, torch.export)
  and the contract's `metadata.preprocessing`, on synthetic shapes drawn here.
Serving never imports training: the subtrees meet through MLflow.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw
from torch import nn

MODEL = "bench-images"
SHAPES = ["circle", "square", "triangle"]


@dataclass(frozen=True)
class ImageModel:
    """A version of a registered model with alias `production`, and images it never saw."""

    name: str
    version: str
    images: np.ndarray  # uint8 (N, C, H, W) held-out images, the model's own size
    labels: list[str]  # their true classes
    classes: list[str]
    provenance: str


class Normalize(nn.Module):
    def __init__(self, mean: list[float], std: list[float]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def small_cnn(channels: int, classes: int) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(channels, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        nn.Flatten(), nn.Linear(64, classes),
    )  # fmt: skip


class _Block(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.down = (
            nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
            if stride != 1 or cin != cout
            else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.down(x))


def resnet18(channels: int, classes: int) -> nn.Module:
    """ResNet-18 (He et al.): 7x7 stem, max pool, four stages of two basic blocks, 11.2M
    parameters for 3 classes."""
    layers: list[nn.Module] = [
        nn.Conv2d(channels, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(),
        nn.MaxPool2d(3, 2, 1),
    ]  # fmt: skip
    cin = 64
    for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
        layers += [_Block(cin, cout, stride), _Block(cout, cout, 1)]
        cin = cout
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, classes)]
    return nn.Sequential(*layers)


def draw_shapes(count: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """uint8 (N, 3, size, size) images of a random shape, colour and place, with noise."""
    rng = np.random.default_rng(seed)
    images = np.empty((count, 3, size, size), np.uint8)
    labels = rng.integers(0, len(SHAPES), count)
    for i, label in enumerate(labels):
        image = Image.new("RGB", (size, size), tuple(int(v) for v in rng.integers(0, 120, 3)))
        r = rng.uniform(0.2, 0.4) * size
        cx, cy = rng.uniform(r, size - r, 2)
        colour = tuple(int(v) for v in rng.integers(120, 256, 3))
        draw = ImageDraw.Draw(image)
        if SHAPES[label] == "circle":
            draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=colour)
        elif SHAPES[label] == "square":
            draw.rectangle((cx - r, cy - r, cx + r, cy + r), fill=colour)
        else:
            draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=colour)
        noisy = np.asarray(image, np.int16) + rng.integers(-20, 21, (size, size, 3))
        images[i] = np.clip(noisy, 0, 255).astype(np.uint8).transpose(2, 0, 1)
    return images, labels


def register(tracking_uri: str, name: str, net: nn.Module, size: int, classes: list[str],
             mean: list[float], std: list[float]) -> str:  # fmt: skip
    """Log `net` (normalisation first) with the contract's metadata; alias `production`."""
    import mlflow
    from mlflow.models import infer_signature

    net = nn.Sequential(Normalize(mean, std), net).eval()
    example = np.random.default_rng(0).random((2, len(mean), size, size), dtype=np.float32)
    with torch.no_grad():
        out = net(torch.from_numpy(example)).numpy()
    preprocessing = {"image_size": size, "channels": len(mean), "resize": "bilinear",
                     "color_mode": "L" if len(mean) == 1 else "RGB", "scale": 255.0,
                     "mean": mean, "std": std, "normalize_in_model": True}  # fmt: skip
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment("serving-benchmark")
    with mlflow.start_run():
        info = mlflow.pytorch.log_model(
            net, name="model", input_example=example, signature=infer_signature(example, out),
            metadata={"classes": classes, "preprocessing": preprocessing},
            registered_model_name=name,
            pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"],
        )  # fmt: skip
    version = str(info.registered_model_version)
    client = mlflow.tracking.MlflowClient(tracking_uri, tracking_uri)
    client.set_model_version_tag(name, version, "classes", json.dumps(classes))
    client.set_registered_model_alias(name, "production", version)
    return version


def own_model(tracking_uri: str, architecture: str, size: int, name: str = MODEL) -> ImageModel:
    """The bench's own network on its drawn shapes: `small_cnn` trained briefly, `resnet18`
    untrained (it only has to be heavy)."""
    torch.manual_seed(0)
    images, labels = draw_shapes(1064, size, seed=0)  # 1000 to train, 64 held out
    x = torch.from_numpy(images[:1000].astype(np.float32) / 255)
    mean = x.mean(dim=(0, 2, 3)).tolist()
    std = x.std(dim=(0, 2, 3)).tolist()
    net = (small_cnn if architecture == "small_cnn" else resnet18)(3, len(SHAPES))
    if architecture == "small_cnn":
        model = nn.Sequential(Normalize(mean, std), net)
        opt = torch.optim.Adam(model.parameters(), lr=0.01)
        y = torch.from_numpy(labels[:1000].astype(np.int64))
        for step in range(60):
            batch = slice((step * 100) % 1000, (step * 100) % 1000 + 100)
            opt.zero_grad()
            nn.functional.cross_entropy(model(x[batch]), y[batch]).backward()
            opt.step()
    version = register(tracking_uri, name, net, size, SHAPES, mean, std)
    params = sum(p.numel() for p in net.parameters())
    return ImageModel(
        name=name, version=version, images=images[1000:],
        labels=[SHAPES[i] for i in labels[1000:]], classes=SHAPES,
        provenance=(f"the bench's own {architecture} ({params:,} parameters, "
                    f"benchmarks/image_models.py) at {size}x{size} RGB on shapes drawn by the "
                    f"bench; NOT the network ml-training-service registers"),
    )  # fmt: skip


def training_service_model(
    training_dir: Path, python: Path, tracking_uri: str, work: Path, architecture: str
) -> ImageModel | str:
    """The training service's model on its `shapes` at 32x32 RGB, or why it is not there."""
    data_dir = work / "training-data"
    command = [str(python), "-m", "training_service.cli", "--register", "true",
               "--model-name", MODEL, "--experiment", "serving-benchmark",
               "--source", "shapes", "--count", "1500", "--image-size", "32",
               "--channels", "3", "--architecture", architecture, "--epochs", "3"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(training_dir.resolve() / "src"),
           "MLFLOW_TRACKING_URI": tracking_uri, "DATA_DIR": str(data_dir)}  # fmt: skip
    done = subprocess.run(command, cwd=training_dir, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        return f"its CLI failed ({done.returncode}): {(done.stderr or done.stdout)[-400:]}"
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    snapshot = data_dir / "datasets" / summary["dataset_id"]
    info = json.loads((snapshot / "info.json").read_text())
    classes = [str(c) for c in info["classes"]]
    import mlflow

    client = mlflow.tracking.MlflowClient(tracking_uri, tracking_uri)
    version = str(summary["model_version"])
    client.set_registered_model_alias(MODEL, "production", version)
    return ImageModel(
        name=MODEL, version=version,
        images=np.load(snapshot / "test_images.npy")[:64],
        labels=[classes[int(i)] for i in np.load(snapshot / "test_labels.npy")[:64]],
        classes=classes,
        provenance=(f"ml-training-service's {architecture} on its `shapes` data at 32x32 RGB, "
                    f"trained and registered by its own command line (run {summary['run_id']},"
                    f" test accuracy {summary['test_accuracy']:.4f})"),
    )  # fmt: skip
