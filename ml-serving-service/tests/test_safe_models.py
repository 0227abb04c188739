"""Safe models: pt2 archives that would unpickle or run code are refused before torch reads them.

Each attack is built from a real archive (tests/unsafe_models.py). For the attacks torch runs
while loading, a child process first shows that plain `torch.export.load` does run the payload
(the attack is real); then `read_artifact` on the same archive refuses it, naming why, and the
payload never runs.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from serving_service.mlmodel import UnsafeModel, read_artifact
from serving_service.pt2_safety import UnsafeArchive, check_pt2
from tests.support import TinyNet
from tests.unsafe_models import ATTACKS, RUN_ON_LOAD, torch_runs_payload

REASONS = {
    "pickled_weight": "as a pickle",
    "opaque_constant": "opaque_obj_0",
    "sample_inputs": "sample inputs unpickle '__builtin__ open'",
    "graph_call": "calls 'torch.os.system'",
    "native_library": "data/aotinductor",
}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A pt2 model directory as mlflow.pytorch saves it (the service's input)."""
    import mlflow.pytorch
    from mlflow.models import infer_signature

    example = np.random.default_rng(0).random((2, 1, 8, 8), dtype=np.float32)
    module = TinyNet().eval()
    with torch.no_grad():
        out = module(torch.from_numpy(example)).numpy()
    path = tmp_path_factory.mktemp("model") / "model"
    mlflow.pytorch.save_model(
        module, str(path), input_example=example, signature=infer_signature(example, out),
        metadata={"classes": [str(i) for i in range(10)]}, pip_requirements=["torch==2.13.0"],
    )  # fmt: skip
    return path


def test_a_good_archive_loads(model_dir: Path) -> None:
    check_pt2((model_dir / "data" / "model.pt2").read_bytes())
    assert read_artifact(model_dir).instance_shape == (1, 8, 8)


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_unsafe_archives_are_refused_unread(attack: str, model_dir: Path, tmp_path: Path) -> None:
    marker = tmp_path / "payload-ran"
    bad = tmp_path / "model"
    shutil.copytree(model_dir, bad)
    pt2 = bad / "data" / "model.pt2"
    pt2.write_bytes(ATTACKS[attack](pt2.read_bytes(), marker))
    if attack in RUN_ON_LOAD:
        assert torch_runs_payload(pt2, marker), f"{attack}: torch did not run it; not an attack"
        marker.unlink()
    with pytest.raises(UnsafeModel, match=REASONS[attack]):
        read_artifact(bad)
    assert not marker.exists()


def test_pickle_flavour_models_are_refused(model_dir: Path, tmp_path: Path) -> None:
    bad = tmp_path / "model"
    shutil.copytree(model_dir, bad)
    (bad / "data" / "model.pt2").unlink()
    (bad / "data" / "model.pth").write_bytes(b"")
    with pytest.raises(UnsafeModel, match="only the 'pt2'"):
        read_artifact(bad)


@pytest.mark.parametrize(
    "text",
    ["__import__('os').system('x')", "eval(chr(49))", "s0.__class__", "Symbol('a b')", "open"],
)
def test_symbolic_shapes_are_plain_arithmetic(text: str) -> None:
    from serving_service.pt2_safety import _check_expression

    _check_expression("Symbol('s77', positive=True, integer=True) + 2*Max(1, s1)", "shape")
    with pytest.raises(UnsafeArchive):
        _check_expression(text, "shape")


def test_non_zip_is_refused() -> None:
    with pytest.raises(UnsafeArchive, match="not a pt2"):
        check_pt2(b"\x80\x02c__builtin__\nopen\n.")
