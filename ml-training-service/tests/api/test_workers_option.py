"""num_workers / cpus_per_worker without a Ray cluster: the local executor refuses them with
a 422 that names TRAINING_EXECUTOR=ray, and TRAINING_EXECUTOR=ray keeps the API process
free of torch, MLflow and Ray until a request needs the cluster (and then says, with a 503,
that RAY_ADDRESS does not answer; that part needs the `ray` extra)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from ray_support import require_ray
from support import ROOT, free_port


@pytest.mark.parametrize("options", [{"num_workers": 2}, {"cpus_per_worker": 2}])
def test_the_local_executor_refuses_data_parallel_jobs(
    authed: httpx.Client, options: dict[str, int]
) -> None:
    before = len(authed.get("/v1/jobs").json()["jobs"])
    response = authed.post("/v1/train", json={"epochs": 1, **options})
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert "TRAINING_EXECUTOR=ray" in detail and f"{next(iter(options))}=2" in detail
    assert len(authed.get("/v1/jobs").json()["jobs"]) == before


PROBE = """
import json, sys
from pathlib import Path
from fastapi.testclient import TestClient
import training_service.app
from training_service.config import Settings
settings = Settings(environment="local", data_dir=Path(sys.argv[1]),
                    training_executor="ray", ray_address=sys.argv[2])
with TestClient(training_service.app.create_app(settings)) as client:
    health = client.get("/health").status_code
    before = sorted(m for m in sys.modules if m.split(".")[0] in {"torch", "mlflow", "ray"})
    answer = client.post("/v1/train", json={"epochs": 1})
print(json.dumps({"health": health, "heavy": before, "status": answer.status_code,
                  "detail": answer.json()["detail"]}))
"""


def test_the_ray_executor_loads_nothing_heavy_until_a_request_needs_the_cluster(
    tmp_path: Path,
) -> None:
    require_ray()
    address = f"127.0.0.1:{free_port()}"  # nothing listens there
    result = subprocess.run(
        [sys.executable, "-c", PROBE, str(tmp_path / "data"), address],
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT / "src")},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout.splitlines()[-1])
    assert answer["health"] == 200 and answer["heavy"] == []
    assert answer["status"] == 503, answer
    assert f"RAY_ADDRESS={address}" in answer["detail"]
