"""MLflow model registry over its REST API (``/api/2.0/mlflow``), through the ``mlflow`` connection.

Versions and aliases, never stages. The alias names are the DAGs' params (``staging_alias``, set
by the training service on each new version; ``production_alias``, what the serving service
loads), so every function here takes the alias it works on. Basic auth (MLflow's basic-auth app)
comes from the connection's login and password; nothing here needs the mlflow package.
"""

from __future__ import annotations

from typing import Any

from orchestration.service_http import MLFLOW_CONN_ID, call_service

API = "/api/2.0/mlflow"


def _flatten_version(raw: dict[str, Any]) -> dict[str, Any]:
    """MLflow's model version with its tag list turned into a dict and numbers parsed."""
    tags = {tag["key"]: tag.get("value") for tag in raw.get("tags", [])}
    accuracy = tags.get("test_accuracy")
    return {
        "name": raw.get("name"),
        "version": str(raw.get("version")),
        "run_id": raw.get("run_id"),
        "status": raw.get("status"),
        "creation_timestamp": int(raw.get("creation_timestamp", 0)),
        "aliases": list(raw.get("aliases", [])),
        "tags": tags,
        "test_accuracy": float(accuracy) if accuracy not in (None, "") else None,
    }


def get_model_version(name: str, version: str) -> dict[str, Any]:
    body = call_service(
        MLFLOW_CONN_ID,
        "GET",
        f"{API}/model-versions/get",
        params={"name": name, "version": version},
    )
    return _flatten_version(body["model_version"])


def get_aliases(name: str) -> dict[str, str]:
    """Alias -> version of a registered model (empty when it has none)."""
    body = call_service(
        MLFLOW_CONN_ID, "GET", f"{API}/registered-models/get", params={"name": name}
    )
    model = body.get("registered_model", {})
    return {entry["alias"]: str(entry["version"]) for entry in model.get("aliases", [])}


def search_model_versions(name: str) -> list[dict[str, Any]]:
    """Every version of a registered model, following MLflow's page tokens."""
    versions: list[dict[str, Any]] = []
    page_token: str | None = None
    while True:
        params: dict[str, Any] = {"filter": f"name='{name}'", "max_results": 200}
        if page_token:
            params["page_token"] = page_token
        body = call_service(MLFLOW_CONN_ID, "GET", f"{API}/model-versions/search", params=params)
        versions.extend(_flatten_version(raw) for raw in body.get("model_versions", []))
        page_token = body.get("next_page_token")
        if not page_token:
            return sorted(versions, key=lambda v: int(v["version"]))


def list_model(name: str) -> dict[str, Any]:
    """The registered model: ``model_name``, ``aliases`` and ``versions`` (oldest first)."""
    return {
        "model_name": name,
        "aliases": get_aliases(name),
        "versions": search_model_versions(name),
    }


def aliased_version(listing: dict[str, Any], alias: str) -> dict[str, Any] | None:
    """The version ``alias`` points to in a ``list_model`` listing (fetched if not listed)."""
    number = listing["aliases"].get(alias)
    if number is None:
        return None
    for version in listing["versions"]:
        if version["version"] == number:
            return version
    return get_model_version(listing["model_name"], number)


def set_alias(name: str, alias: str, version: str) -> None:
    call_service(
        MLFLOW_CONN_ID,
        "POST",
        f"{API}/registered-models/alias",
        payload={"name": name, "alias": alias, "version": version},
    )


def delete_model_version(name: str, version: str) -> None:
    call_service(
        MLFLOW_CONN_ID,
        "DELETE",
        f"{API}/model-versions/delete",
        payload={"name": name, "version": version},
    )
