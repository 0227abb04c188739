"""The benchmark's model: a small CNN trained on sklearn's digits, registered in MLflow the
way ml-training-service registers its models (mlflow.pytorch pt2, signature, input example,
classes in metadata and in a version tag, alias `production`)."""

from __future__ import annotations

import json

import numpy as np

MODEL = "bench-digits"


def register_model(tracking_uri: str) -> tuple[str, np.ndarray]:
    """Train a small CNN on digits and register it the way the training service does."""
    import mlflow
    import torch
    from mlflow.models import infer_signature
    from sklearn.datasets import load_digits
    from torch import nn

    torch.set_num_threads(1)
    torch.manual_seed(0)
    data = load_digits()
    x = (data.images / 16.0).astype(np.float32)[:, None]
    y = torch.from_numpy(data.target.astype(np.int64))
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
            pip_requirements=["torch==2.13.0"],
        )
    version = str(info.registered_model_version)
    client = mlflow.tracking.MlflowClient(tracking_uri, tracking_uri)
    client.set_model_version_tag(MODEL, version, "classes", json.dumps(classes))
    client.set_registered_model_alias(MODEL, "production", version)
    return version, x
