"""Stub alert receiver: stores each JSON alert the notifier posts."""

from __future__ import annotations

from fastapi import FastAPI, Request

from tests.stubs.world import World


def create_webhook_app(world: World) -> FastAPI:
    app = FastAPI(title="webhook stub")

    @app.post("/alerts")
    async def receive(request: Request) -> dict[str, str]:
        world.alerts.append(await request.json())
        return {"status": "received"}

    return app
