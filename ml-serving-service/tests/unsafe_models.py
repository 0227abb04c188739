"""pt2 archives that run code when torch.export.load reads them, built from a real archive.

Each attack writes a marker file when its payload runs, so a test can show both that torch
really runs it (`torch_runs_payload`) and that the service never does. Also a command line
for the attack tests of integration-tests (their venv has no torch):
`python -m tests.unsafe_models safe URI NAME` registers a good version with alias
`production`; `python -m tests.unsafe_models unsafe URI NAME ATTACK MARKER` registers the
attack as a new version and prints it.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import mlflow
from mlflow.tracking import MlflowClient


def _payload(marker: Path) -> bytes:
    """A protocol-2 pickle that calls open(marker, "w") when unpickled."""
    path = str(marker).encode()
    return (
        b"c__builtin__\nopen\n(X"
        + len(path).to_bytes(4, "little")
        + path
        + b"X\x01\x00\x00\x00wtR."
    )


def _rewrite(
    pt2: bytes, change: Callable[[str, bytes], bytes | None], add: dict[str, bytes]
) -> bytes:
    """A copy of `pt2` with members changed (None drops one) and members added (root-relative)."""
    source = zipfile.ZipFile(io.BytesIO(pt2))
    root = source.namelist()[0].split("/", 1)[0]
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as target:
        for info in source.infolist():
            data = change(info.filename.partition("/")[2], source.read(info.filename))
            if data is not None:
                target.writestr(info.filename, data)
        for name, data in add.items():
            target.writestr(f"{root}/{name}", data)
    return out.getvalue()


def pickled_weight(pt2: bytes, marker: Path) -> bytes:
    """A weight marked `use_pickle`: torch.load(weights_only=False) on its bytes."""

    def change(name: str, data: bytes) -> bytes:
        if name == "data/weights/model_weights_config.json":
            config = json.loads(data)
            first = next(iter(config["config"].values()))
            first["use_pickle"] = True
            first["path_name"] = "weight_0"
            return json.dumps(config).encode()
        if name == "data/weights/weight_0":
            return _payload(marker)
        return data

    return _rewrite(pt2, change, {})


def opaque_constant(pt2: bytes, marker: Path) -> bytes:
    """A constant named `opaque_obj_*`: pickle.loads on its bytes."""

    def change(name: str, data: bytes) -> bytes:
        if name == "data/constants/model_constants_config.json":
            config = json.loads(data)
            config["config"]["evil"] = {
                "path_name": "opaque_obj_0", "is_param": False, "use_pickle": True,
                "tensor_meta": None,
            }  # fmt: skip
            return json.dumps(config).encode()
        return data

    return _rewrite(pt2, change, {"data/constants/opaque_obj_0": _payload(marker)})


def sample_inputs(pt2: bytes, marker: Path) -> bytes:
    """Sample inputs whose pickle fails weights_only, so torch retries with weights_only=False."""

    def change(name: str, data: bytes) -> bytes:
        if name != "data/sample_inputs/model.pt":
            return data
        return _rewrite(data, lambda n, d: _payload(marker) if n == "data.pkl" else d, {})

    return _rewrite(pt2, change, {})


def graph_call(pt2: bytes, marker: Path) -> bytes:
    """A graph node calling `torch.os.system`: torch's deserializer accepts any callable."""

    def change(name: str, data: bytes) -> bytes:
        if name == "models/model.json":
            return data.replace(b'"torch.ops.aten.relu.default"', b'"torch.os.system"', 1)
        return data

    return _rewrite(pt2, change, {})


def native_library(pt2: bytes, marker: Path) -> bytes:
    """An AOTInductor member: a shared library torch loads and runs."""
    return _rewrite(pt2, lambda n, d: d, {"data/aotinductor/model/model.so": b"\x7fELF"})


ATTACKS: dict[str, Callable[[bytes, Path], bytes]] = {
    "pickled_weight": pickled_weight,
    "opaque_constant": opaque_constant,
    "sample_inputs": sample_inputs,
    "graph_call": graph_call,
    "native_library": native_library,
}
# The attacks whose payload torch.export.load runs as it loads (the others run later).
RUN_ON_LOAD = ("pickled_weight", "opaque_constant", "sample_inputs")


def torch_runs_payload(archive: Path, marker: Path) -> bool:
    """Whether plain torch.export.load on `archive` runs the payload (in a child process)."""
    code = (
        "import sys, torch\ntry:\n    torch.export.load(sys.argv[1])\nexcept Exception:\n    pass\n"
    )
    subprocess.run([sys.executable, "-c", code, str(archive)], check=True, timeout=300)  # noqa: S603
    return marker.exists()


def _good_version(uri: str, name: str, alias: str | None) -> str:
    import numpy as np

    from tests.support import TinyNet, register

    example = np.random.default_rng(0).random((2, 1, 8, 8), dtype=np.float32)
    return register(uri, name, TinyNet(), example, alias=alias, test_accuracy=0.9)


def register_unsafe(uri: str, name: str, attack: str, marker: Path) -> str:
    """Log a good pt2 model, swap its archive for the attack, register it; returns the version."""
    version = _good_version(uri, name, alias=None)
    client = MlflowClient(uri, registry_uri=uri)
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(mlflow.artifacts.download_artifacts(
            artifact_uri=client.get_model_version_download_uri(name, version), dst_path=tmp,
            tracking_uri=uri,
        ))  # fmt: skip
        pt2 = local / "data" / "model.pt2"
        pt2.write_bytes(ATTACKS[attack](pt2.read_bytes(), marker))
        mlflow.set_tracking_uri(uri)
        with mlflow.start_run() as run:
            mlflow.log_artifacts(str(local), artifact_path="model")
        source = f"{run.info.artifact_uri}/model"
        created = client.create_model_version(name, source, run_id=run.info.run_id)
    client.set_model_version_tag(name, created.version, "classes", json.dumps(list("0123456789")))
    return str(created.version)


if __name__ == "__main__":
    command, uri, model = sys.argv[1:4]
    if command == "safe":
        print(_good_version(uri, model, alias="production"))
    else:
        print(register_unsafe(uri, model, sys.argv[4], Path(sys.argv[5])))
