"""Hot swaps free the model they replace: 200 alias moves under light load, flat memory.

The watcher, slot and scorer are the app's own (`create_app`), with the garbage collector
set up as at startup; only the registry is local: the alias alternates between two versions
at every check, and each load lifts a fresh copy of one exported program (saved the way
training logs it) into a new model, as a download would. Copying instead of deserializing
200 times keeps the soak to seconds.
"""

from __future__ import annotations

import asyncio
import copy
import gc
from collections.abc import Iterator
from pathlib import Path

import mlflow
import numpy as np
import orjson
import pytest
import torch
from mlflow.models import infer_signature
from torch import nn

from serving_service.app import calm_garbage_collector, create_app
from serving_service.config import Settings
from serving_service.graph import fast_forward
from serving_service.mlmodel import read_artifact
from serving_service.model import LoadedModel
from serving_service.registry import VersionInfo
from tests.conftest import Digits
from tests.support import CLASSES

SWAPS = 200
WARMUP = 20
MAX_GROWTH_MB = 30
# What a swapped-out model keeps in reference cycles is its graph (nodes and their
# metadata), about 12 KB per layer: with this many, a model kept per swap adds up to about
# 50 MB over the soak.
LAYERS = 24


class DeepNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        hidden = [m for _ in range(LAYERS) for m in (nn.Linear(64, 64), nn.ReLU())]
        self.net = nn.Sequential(nn.Flatten(), *hidden, nn.Linear(64, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class AlternatingRegistry:
    """The two registry calls the watcher makes, on a local model directory."""

    def __init__(self, model_dir: Path) -> None:
        self.artifact = read_artifact(model_dir)
        self.program = torch.export.load(str(model_dir / "data" / "model.pt2"))
        self.checks = 0

    def resolve_alias(self, alias: str) -> VersionInfo:
        self.checks += 1
        return VersionInfo("image-classifier", str(1 + self.checks % 2), None, {})

    def load(self, info: VersionInfo) -> LoadedModel:
        artifact = self.artifact
        return LoadedModel(
            name=info.name,
            version=info.version,
            run_id=None,
            module=fast_forward(copy.deepcopy(self.program), artifact.instance_shape),
            instance_shape=artifact.instance_shape,
            classes=artifact.classes or tuple(CLASSES),
            sample=artifact.sample,
        )


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory, digits: Digits) -> Path:
    torch.manual_seed(0)
    module = DeepNet().eval()
    example = digits.x_test[:2]
    with torch.no_grad():
        out = module(torch.from_numpy(example)).numpy()
    path = tmp_path_factory.mktemp("deep") / "model"
    mlflow.pytorch.save_model(
        module,
        path,
        input_example=example,
        signature=infer_signature(example, out),
        metadata={"classes": CLASSES},
        pip_requirements=["torch==2.13.0"],
    )
    return path


@pytest.fixture
def startup_gc() -> Iterator[None]:
    """The collector as the service runs it; this test process's own settings after."""
    threshold = gc.get_threshold()
    calm_garbage_collector()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)


def resident_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS in /proc/self/status")


async def soak(model_dir: Path, body: bytes) -> tuple[list[float], int]:
    app = create_app(Settings(environment="local", feedback_memory=64, monitor_window=64))
    watcher, scorer = app.state.watcher, app.state.scorer
    watcher.registry = AlternatingRegistry(model_dir)
    stop = asyncio.Event()

    async def light_load() -> int:
        answered = 0
        while not stop.is_set():
            if app.state.slot.current is not None:
                await scorer.predict(body)
                answered += 1
            await asyncio.sleep(0.005)
        return answered

    load = asyncio.create_task(light_load())
    rss = []
    for _ in range(SWAPS):
        result = await watcher.check(retry_refused=False)
        assert result.swapped
        rss.append(resident_mb())
    stop.set()
    return rss, await load


@pytest.mark.usefixtures("startup_gc")
@pytest.mark.filterwarnings("ignore:.*LeafSpec.*:FutureWarning")  # deepcopy
def test_swapped_out_models_are_freed(model_dir: Path, digits: Digits) -> None:
    body = orjson.dumps({"instances": np.ascontiguousarray(digits.x_test[:4, 0]).tolist()})
    rss, answered = asyncio.run(soak(model_dir, body))
    growth = rss[-1] - rss[WARMUP - 1]
    print(f"{SWAPS} swaps, {answered} requests; RSS {rss[WARMUP - 1]:.0f} -> {rss[-1]:.0f} MB")
    assert answered > SWAPS
    assert growth < MAX_GROWTH_MB, f"resident memory grew {growth:.0f} MB over the swaps"
