"""Stub of the MLflow REST API subset the orchestrator uses (registry with aliases)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from tests.stubs.common import instrument
from tests.stubs.world import World

API = "/api/2.0/mlflow"


def _not_found(message: str) -> JSONResponse:
    return JSONResponse(
        {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": message}, status_code=404
    )


def create_mlflow_app(world: World) -> FastAPI:
    app = FastAPI(title="mlflow stub")
    instrument(app, world, "mlflow", auth_posts=False)

    def with_aliases(version: dict[str, Any]) -> dict[str, Any]:
        names = [a for a, v in world.aliases.items() if v == version["version"]]
        return {**version, "aliases": names}

    @app.get(f"{API}/registered-models/get", response_model=None)
    def get_registered_model(name: str) -> dict[str, Any] | JSONResponse:
        if name != world.model_name or not world.versions:
            return _not_found(f"Registered Model with name={name} not found")
        aliases = [{"alias": a, "version": v} for a, v in sorted(world.aliases.items())]
        return {"registered_model": {"name": name, "aliases": aliases}}

    @app.get(f"{API}/model-versions/get", response_model=None)
    def get_version(name: str, version: str) -> dict[str, Any] | JSONResponse:
        if name != world.model_name or version not in world.versions:
            return _not_found(f"Model Version (name={name}, version={version}) not found")
        return {"model_version": with_aliases(world.versions[version])}

    @app.get(f"{API}/model-versions/search")
    def search(filter: str = "", max_results: int = 200, page_token: str = "") -> dict[str, Any]:
        if filter != f"name='{world.model_name}'":
            return {"model_versions": []}
        # Two versions a page, to exercise the page tokens.
        ordered = [
            with_aliases(v) for _, v in sorted(world.versions.items(), key=lambda i: -int(i[0]))
        ]
        start = int(page_token or 0)
        page = ordered[start : start + 2]
        body: dict[str, Any] = {"model_versions": page}
        if start + 2 < len(ordered):
            body["next_page_token"] = str(start + 2)
        return body

    @app.post(f"{API}/registered-models/alias", response_model=None)
    async def set_alias(request: Request) -> dict[str, Any] | JSONResponse:
        body = await request.json()
        if body["version"] not in world.versions:
            return _not_found(f"Model Version (version={body['version']}) not found")
        world.aliases[body["alias"]] = body["version"]
        return {}

    @app.delete(f"{API}/model-versions/delete", response_model=None)
    async def delete_version(request: Request) -> dict[str, Any] | JSONResponse:
        body = await request.json()
        if body["version"] not in world.versions:
            return _not_found(f"Model Version (version={body['version']}) not found")
        del world.versions[body["version"]]
        return {}

    return app
