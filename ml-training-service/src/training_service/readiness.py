"""Readiness: does the MLflow tracking server answer? (httpx only; no MLflow import.)"""

from __future__ import annotations

import httpx


def mlflow_unavailable_reason(tracking_uri: str, timeout: float = 2.0) -> str | None:
    """None when the tracking server answers, else a sentence saying why it does not."""
    if not tracking_uri.startswith(("http://", "https://")):
        from mlflow import MlflowClient  # heavy; only local stores need it

        try:  # a local store (sqlite:///...): ready when it can be queried
            MlflowClient(tracking_uri).search_experiments(max_results=1)
        except Exception as exc:  # any failure means "not ready"; the reason is reported
            return f"MLflow store {tracking_uri} is not usable: {exc}"
        return None
    try:
        response = httpx.get(f"{tracking_uri.rstrip('/')}/health", timeout=timeout)
    except httpx.HTTPError as exc:
        return (
            f"MLflow at {tracking_uri} is unreachable ({type(exc).__name__}); "
            "start it or fix MLFLOW_TRACKING_URI"
        )
    if response.status_code != 200:
        return f"MLflow at {tracking_uri} answered /health with HTTP {response.status_code}"
    return None
