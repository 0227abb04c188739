"""Stub alert receiver: stores each JSON payload the notifiers post, and its X-Request-ID.

Failure alerts (severity ``error``) go to ``world.alerts``; the other notices (``task_retry``,
``run_succeeded``, ``deadline_missed``) to ``world.notices``, so a test of one need not sift
through the other.
"""

from __future__ import annotations

from fastapi import FastAPI, Request

from tests.stubs.world import World


def create_webhook_app(world: World) -> FastAPI:
    app = FastAPI(title="webhook stub")

    @app.post("/alerts")
    async def receive(request: Request) -> dict[str, str]:
        payload = await request.json()
        request_id = request.headers.get("x-request-id")
        if payload.get("severity") == "error":
            world.alerts.append(payload)
            world.alert_request_ids.append(request_id)
        else:
            world.notices.append(payload)
            world.notice_request_ids.append(request_id)
        return {"status": "received"}

    return app
