"""`POST /v1/model/reload` on one replica reloads every replica: a Redis pub/sub channel.

The replica that gets the request announces it on `serving:<MODEL_NAME>:<MODEL_ALIAS>:reload`
and then re-resolves the alias itself; every other replica subscribed to the channel runs
the same check (`AliasWatcher.check(retry_refused=True)`) when the announcement arrives.
Each replica still polls the alias every MODEL_POLL_INTERVAL on its own, so a replica that
missed the announcement (Redis down, the replica restarting) converges all the same.
While Redis is down the listener retries with a growing pause and reports the store
unavailable through the shared `StoreHealth`; it subscribes again when Redis answers.
"""

from __future__ import annotations

import asyncio
import logging

import orjson
from redis.asyncio import Redis

from serving_service.feedback_ledger import new_key
from serving_service.shared_state import STORE_ERRORS, StoreHealth, key_prefix
from serving_service.watcher import AliasWatcher

log = logging.getLogger(__name__)

# Seconds between reads of the channel when nothing arrives (a PING checks the connection
# when it has been idle for the client's health-check interval).
LISTEN_TIMEOUT = 1.0


class ReloadChannel:
    """Announces reloads to the other replicas and runs theirs on this one."""

    def __init__(
        self, client: Redis, model_name: str, alias: str, watcher: AliasWatcher, health: StoreHealth
    ) -> None:
        self.client = client
        self.channel = f"{key_prefix(model_name)}{alias}:reload"
        self.watcher = watcher
        self.health = health
        # Tells this replica's own announcements apart from the others'.
        self.sender = new_key()

    async def announce(self) -> int | None:
        """Ask every other replica to reload; how many listeners got it (None: Redis down)."""
        message = orjson.dumps({"from": self.sender})
        try:
            receivers = int(await self.client.publish(self.channel, message))
        except STORE_ERRORS as exc:
            self.health.failed("announcing a reload", exc)
            log.warning("reload not announced to the other replicas: they converge by polling")
            return None
        self.health.ok()
        return receivers

    async def listen(self) -> None:
        """Subscribe and run the others' reloads; resubscribe after a failure. Cancelled on
        shutdown."""
        pause = 0.2
        while True:
            try:
                await self._listen_once()
            except STORE_ERRORS as exc:
                self.health.failed("listening for reloads", exc)
                await asyncio.sleep(pause)
                pause = min(pause * 2, 5.0)
            else:
                pause = 0.2

    async def _listen_once(self) -> None:
        async with self.client.pubsub(ignore_subscribe_messages=True) as pubsub:
            await pubsub.subscribe(self.channel)
            self.health.ok()
            while True:
                message = await pubsub.get_message(timeout=LISTEN_TIMEOUT)
                if message is not None:
                    await self._on_message(message.get("data"))

    async def _on_message(self, data: object) -> None:
        try:
            sender = orjson.loads(data)["from"]  # type: ignore[arg-type]
        except (orjson.JSONDecodeError, TypeError, KeyError):
            log.warning("ignored a malformed message on %s", self.channel)
            return
        if sender == self.sender:
            return
        log.info("reload announced by another replica: re-resolving the alias")
        try:
            await self.watcher.check(retry_refused=True)
        except Exception:  # the listener must survive anything a check does
            log.exception("reload announced by another replica failed")
