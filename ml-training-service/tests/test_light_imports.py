"""The API process never imports torch, MLflow, Ray or Optuna: a rule kept by this test.

Training imports them in worker processes (or, with JOB_EXECUTOR=thread, on the first job);
the service itself must start in seconds. A fresh interpreter builds the app as deployed
(process executor), runs its lifespan, answers GET /health, then lists the heavy modules it
loaded: a top-level `import torch` (or `mlflow`) anywhere the API reaches fails the test.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from support import ROOT

# Runs in the fresh interpreter. argv: data dir, executor, then modules to import first.
PROBE = """
import json, sys
from pathlib import Path
for name in sys.argv[3:]:
    __import__(name)
from fastapi.testclient import TestClient
import training_service.app
from training_service.config import Settings
settings = Settings(
    environment="local", data_dir=Path(sys.argv[1]), job_executor=sys.argv[2],
    max_concurrent_jobs=1,
)
with TestClient(training_service.app.create_app(settings)) as client:
    status = client.get("/health").status_code
heavy = sorted(m for m in sys.modules if m.split(".")[0] in {"torch", "mlflow", "ray", "optuna"})
print(json.dumps({"health": status, "heavy": heavy}))
"""


def heavy_modules_loaded(
    data_dir: Path, executor: str, *first: str, path: tuple[Path, ...] = ()
) -> list[str]:
    """torch and mlflow modules (with submodules) in sys.modules of a fresh API process."""
    python_path = ":".join(str(p) for p in (*path, ROOT / "src"))
    result = subprocess.run(
        [sys.executable, "-c", PROBE, str(data_dir), executor, *first],
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": python_path},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout.splitlines()[-1])
    assert answer["health"] == 200
    loaded: list[str] = answer["heavy"]
    return loaded


def test_the_api_process_loads_neither_torch_nor_mlflow(tmp_path: Path) -> None:
    assert heavy_modules_loaded(tmp_path / "data", "process") == []


def test_the_probe_sees_a_heavy_import(tmp_path: Path) -> None:
    """Guards the guard: what the probe reports when an API module imports torch.

    A stand-in `torch` package (importing a submodule, as the real one does) keeps it fast.
    """
    fake = tmp_path / "fake" / "torch"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("from torch import nn\n")
    (fake / "nn.py").write_text("")
    loaded = heavy_modules_loaded(tmp_path / "data", "thread", "torch", path=(fake.parent,))
    assert loaded == ["torch", "torch.nn"]
