"""Fast checks without servers: startup auth rule and input reshaping."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from serving_service.config import Settings
from serving_service.model import InvalidInput, LoadedModel, SmokeTestError


def test_refuses_to_start_without_token_outside_local(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("API_TOKEN", raising=False)
    monkeypatch.setenv("ENVIRONMENT", "production")
    with pytest.raises(ValidationError, match="API_TOKEN is not set"):
        Settings()
    monkeypatch.setenv("ENVIRONMENT", "local")
    assert Settings().token is None
    monkeypatch.setenv("API_TOKEN", "secret")
    monkeypatch.setenv("ENVIRONMENT", "production")
    assert Settings().token == "secret"


def test_entry_point_exits_without_token() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("API_TOKEN", "ENVIRONMENT")}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1] / "src")
    proc = subprocess.run(
        [sys.executable, "-m", "serving_service"], env=env, capture_output=True, timeout=120
    )
    assert proc.returncode != 0
    assert b"API_TOKEN is not set" in proc.stderr


def _model(module: torch.nn.Module, shape: tuple[int, ...] = (1, 8, 8)) -> LoadedModel:
    return LoadedModel(
        name="m", version="1", run_id=None, module=module, instance_shape=shape,
        classes=tuple(str(i) for i in range(10)),
    )  # fmt: skip


def test_reshapes_each_accepted_form_to_the_signature() -> None:
    model = _model(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10)))
    x = np.random.default_rng(0).random((3, 1, 8, 8), dtype=np.float32)
    for form in (x, x[:, 0], x.reshape(3, 64)):
        batch = model.to_batch(form.tolist())
        assert batch.shape == (3, 1, 8, 8)
        np.testing.assert_array_equal(batch, x)
    with pytest.raises(InvalidInput, match="got \\[8, 7\\]"):
        model.to_batch(np.zeros((1, 8, 7)).tolist())


def test_smoke_test_refuses_wrong_output_width() -> None:
    model = _model(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 3)))
    with pytest.raises(SmokeTestError, match="expected \\[2, 10\\]"):
        model.smoke_test()
