"""Stub alert receiver: stores each JSON alert the notifier posts, and its X-Request-ID."""

from __future__ import annotations

from fastapi import FastAPI, Request

from tests.stubs.world import World


def create_webhook_app(world: World) -> FastAPI:
    app = FastAPI(title="webhook stub")

    @app.post("/alerts")
    async def receive(request: Request) -> dict[str, str]:
        world.alerts.append(await request.json())
        world.alert_request_ids.append(request.headers.get("x-request-id"))
        return {"status": "received"}

    return app
