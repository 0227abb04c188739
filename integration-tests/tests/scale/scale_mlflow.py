"""What the scale suite reads from MLflow and the services, through the TLS proxy.

Plain GETs that must answer 200 (`get_json`), the bearer header of a service token, an
MLflow run, and the files under an artifact root as MLflow's artifact proxy lists them
(`artifact_prefix`, `artifact_paths`): the pipeline module compares them with the bucket's
keys, the fault module with their sha256 before and after an object store restart.
"""

from __future__ import annotations

from typing import Any

import httpx


def get_json(http: httpx.Client, url: str, **params: Any) -> Any:
    answer = http.get(url, params=params or None)
    assert answer.status_code == 200, f"GET {url} -> {answer.status_code}: {answer.text[:500]}"
    return answer.json()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def mlflow_run(http: httpx.Client, mlflow: str, run_id: str) -> dict[str, Any]:
    return dict(get_json(http, f"{mlflow}/api/2.0/mlflow/runs/get", run_id=run_id)["run"])


def artifact_prefix(root: str) -> str:
    """The path of an artifact root (`mlflow-artifacts:/1/...`) in the proxy, and in the
    bucket: `1/...`."""
    return root.removeprefix("mlflow-artifacts:").strip("/")


def artifact_paths(http: httpx.Client, mlflow: str, root: str) -> list[str]:
    """Every file under an artifact root (full paths from the bucket's top), as MLflow's
    artifact proxy lists them (through `lb`)."""
    found: list[str] = []
    pending = [artifact_prefix(root)]
    while pending:
        path = pending.pop()
        listing = get_json(http, f"{mlflow}/api/2.0/mlflow-artifacts/artifacts", path=path)
        for entry in listing.get("files", []):
            full = f"{path}/{entry['path']}"
            (pending if entry.get("is_dir") else found).append(full)
    return found
