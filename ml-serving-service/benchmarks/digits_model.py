"""The benchmark's own model, the fallback when no training service is given: a small CNN
trained on sklearn's digits and registered in MLflow the way ml-training-service registers
its models (mlflow.pytorch pt2, signature, input example, classes in metadata and in a
version tag), with the alias `production` pointing at it. `RegisteredModel` is what either
source hands the benchmark: the version, held-out digits and where the model came from.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

MODEL = "bench-digits"
HELD_OUT = 64  # the last digits of the set: never trained on, sent to every server


@dataclass(frozen=True)
class RegisteredModel:
    """A version of `MODEL` ready to serve, and digits it has never seen."""

    version: str
    x_held_out: np.ndarray  # float32 (N, 1, 8, 8) in 0..1
    y_held_out: list[str]  # their true classes
    classes: list[str]  # the output order of the logits
    provenance: str  # which network, trained and registered by what


def register_model(tracking_uri: str) -> RegisteredModel:
    """Train the bench's small CNN on digits and register it the way the training service does."""
    import mlflow
    import torch
    from mlflow.models import infer_signature
    from sklearn.datasets import load_digits
    from torch import nn

    torch.set_num_threads(1)
    torch.manual_seed(0)
    data = load_digits()
    x_all = (data.images / 16.0).astype(np.float32)[:, None]
    x, x_held_out = x_all[:-HELD_OUT], x_all[-HELD_OUT:]
    y = torch.from_numpy(data.target[:-HELD_OUT].astype(np.int64))
    net = nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 2 * 2, 10),
    )  # fmt: skip
    opt = torch.optim.Adam(net.parameters(), lr=0.01)
    xt = torch.from_numpy(x)
    for _ in range(60):
        opt.zero_grad()
        nn.functional.cross_entropy(net(xt), y).backward()
        opt.step()
    net.eval()
    example = x[:2]
    with torch.no_grad():
        out = net(torch.from_numpy(example)).numpy()
    classes = [str(i) for i in range(10)]
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment("serving-benchmark")
    with mlflow.start_run():
        info = mlflow.pytorch.log_model(
            net,
            name="model",
            input_example=example,
            signature=infer_signature(example, out),
            metadata={"classes": classes},
            registered_model_name=MODEL,
            pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"],
        )
    version = str(info.registered_model_version)
    client = mlflow.tracking.MlflowClient(tracking_uri, tracking_uri)
    client.set_model_version_tag(MODEL, version, "classes", json.dumps(classes))
    client.set_registered_model_alias(MODEL, "production", version)
    n_params = sum(p.numel() for p in net.parameters())
    return RegisteredModel(
        version=version,
        x_held_out=x_held_out,
        y_held_out=[str(int(t)) for t in data.target[-HELD_OUT:]],
        classes=classes,
        provenance=(
            f"the benchmark's own CNN (benchmarks/digits_model.py, 2 conv + 1 linear, "
            f"{n_params:,} parameters, no BatchNorm), trained and registered by the benchmark; "
            f"NOT the network ml-training-service registers: pass --training-service for that"
        ),
    )
