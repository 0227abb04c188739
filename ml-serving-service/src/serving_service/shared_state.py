"""The replicas' shared ledger in Redis (STATE_URL): prediction ids, feedback, live accuracy.

Predictions stay fast: `issue` only appends to a bounded in-memory queue and wakes the
flusher task, which writes everything queued since its last write in one Lua script call
(one round trip for many requests). Feedback is one script call that checks and claims the
id atomically, so a prediction counts once whichever replica gets its feedback, and
`GET /v1/model` reads the same counters from every replica.

The keys and the two Lua scripts are in `state_scripts.py`.

Redis down: predictions are served (ids queue up to `QUEUE_MAX` requests and are written
when it answers again, older ones dropped), feedback raises `StateUnavailable` (503) and
the store reports itself unavailable (`/ready` says degraded). Nothing logged or raised here
carries STATE_URL: redis-py's messages name host and port only, and `StoreHealth.scrub`
blanks the password should one ever appear.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from typing import Any
from urllib.parse import urlsplit

import orjson
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from serving_service.feedback_ledger import (
    FeedbackAlreadyGiven,
    InvalidLabel,
    Outcome,
    StateKind,
    StateUnavailable,
    UnknownPrediction,
    accuracy_row,
    already_given,
    ids_for,
    invalid_label,
    new_key,
    split_id,
    unknown,
)
from serving_service.state_scripts import FEEDBACK_SCRIPT, ISSUE_SCRIPT

log = logging.getLogger(__name__)

# Requests whose ids wait for the flusher at most (while Redis is down, the oldest go).
QUEUE_MAX = 20_000
# Requests written by one script call at most.
FLUSH_MAX = 512
# An id unknown to the store is looked up once more after this long: another replica may
# have answered its prediction a moment ago and not flushed it yet.
UNKNOWN_RECHECK_SECONDS = 0.2
STORE_ERRORS = (RedisError, OSError)
DOWN_DETAIL = (
    "the shared state store (STATE_URL) does not answer: feedback cannot be recorded now; "
    "predictions are still served, retry in a few seconds"
)


def connect(url: str) -> Redis:
    """A client for STATE_URL: short timeouts, one quick retry (a connection that died with
    a restarted Redis is replaced), a PING on connections idle for 5 s."""
    return Redis.from_url(
        url,
        decode_responses=True,
        socket_connect_timeout=1.0,
        socket_timeout=2.0,
        health_check_interval=5,
        retry=Retry(NoBackoff(), 1),
    )


def describe(url: str) -> str:
    """STATE_URL without its credentials, for the startup log."""
    parts = urlsplit(url)
    where = parts.hostname or parts.path or "?"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{where}{port}{parts.path if parts.hostname else ''}"


def key_prefix(model_name: str) -> str:
    return f"serving:{model_name}:"


class StoreHealth:
    """Whether Redis answered the last call; logs each change once, never the password."""

    def __init__(self, password: str | None) -> None:
        self.available = True
        self._password = password

    def ok(self) -> None:
        if not self.available:
            self.available = True
            log.info("shared state store answers again")

    def failed(self, what: str, exc: BaseException) -> None:
        if self.available:
            self.available = False
            log.warning(
                "shared state store unreachable (%s): %s: %s",
                what,
                type(exc).__name__,
                self.scrub(str(exc)),
            )

    def scrub(self, text: str) -> str:
        return text.replace(self._password, "***") if self._password else text


class RedisLedger:
    """The `Ledger` of every replica that shares one STATE_URL."""

    def __init__(
        self, client: Redis, model_name: str, window: int, remembered: int, ttl: int
    ) -> None:
        self.client = client
        self.health = StoreHealth(client_password(client))
        self.window, self.remembered, self.ttl = window, remembered, ttl
        self.prefix = key_prefix(model_name)
        self._pending: deque[tuple[str, str, tuple[str, ...], list[str]]] = deque(maxlen=QUEUE_MAX)
        self._wake = asyncio.Event()
        self._issue = client.register_script(ISSUE_SCRIPT)
        self._feedback = client.register_script(FEEDBACK_SCRIPT)

    def issue(self, version: str, classes: tuple[str, ...], labels: list[str]) -> list[str]:
        key = new_key()
        self._pending.append((key, version, classes, labels))
        if not self._wake.is_set():
            self._wake.set()
        return ids_for(key, len(labels))

    async def run_flusher(self) -> None:
        """Write queued ids as they come; back off while Redis is down. Cancelled on shutdown."""
        pause = 0.1
        while True:
            await self._wake.wait()
            self._wake.clear()
            if await self.flush():
                pause = 0.1
            else:
                self._wake.set()  # what is queued goes out once Redis answers
                await asyncio.sleep(pause)
                pause = min(pause * 2, 5.0)

    async def flush(self) -> bool:
        """Write everything queued now; False (the batch queued again) when Redis fails."""
        while self._pending:
            batch = [self._pending.popleft() for _ in range(min(FLUSH_MAX, len(self._pending)))]
            try:
                await self._issue(keys=self._state_keys(), args=self._issue_args(batch))
            except STORE_ERRORS as exc:
                self.health.failed("writing prediction ids", exc)
                room = QUEUE_MAX - len(self._pending)
                self._pending.extendleft(reversed(batch[-room:] if room > 0 else []))
                return False
            self.health.ok()
        return True

    def _state_keys(self) -> list[str]:
        p = self.prefix
        return [f"{p}order", f"{p}issued", f"{p}classes"]

    def _issue_args(self, batch: list[tuple[str, str, tuple[str, ...], list[str]]]) -> list[Any]:
        classes = {version: c for _, version, c, _ in batch}
        args: list[Any] = [f"{self.prefix}p:", self.remembered, self.ttl, len(classes)]
        for version, c in classes.items():
            args += (version, orjson.dumps(c))
        for key, version, _, labels in batch:
            args += (key, len(labels), version, orjson.dumps(labels))
        return args

    async def feedback(self, prediction_id: str, label: str) -> Outcome:
        key, index = split_id(prediction_id)
        if index is None or not key:
            raise UnknownPrediction(self._unknown(prediction_id))
        if self._pending:  # this replica's own recent ids first
            await self.flush()
        reply = await self._call_feedback(key, index, label)
        if reply[0] == "unknown":
            await asyncio.sleep(UNKNOWN_RECHECK_SECONDS)
            reply = await self._call_feedback(key, index, label)
        status = reply[0]
        if status == "unknown":
            raise UnknownPrediction(self._unknown(prediction_id))
        if status == "again":
            raise FeedbackAlreadyGiven(already_given(prediction_id))
        if status == "invalid":
            raise InvalidLabel(invalid_label(label, reply[1], orjson.loads(reply[2])))
        _, version, predicted, correct, fed, right = reply
        answer = {
            "prediction_id": prediction_id,
            "model_version": version,
            "predicted": predicted,
            "label": label,
            "correct": bool(correct),
        }
        return Outcome(answer, int(right) / int(fed))

    async def _call_feedback(self, key: str, index: int, label: str) -> list[Any]:
        p = self.prefix
        try:
            reply: list[Any] = await self._feedback(
                keys=[f"{p}p:{key}", f"{p}classes", f"{p}accuracy"],
                args=[index, label, self.window, f"{p}outcomes:", self.ttl],
            )
        except STORE_ERRORS as exc:
            self.health.failed("recording feedback", exc)
            raise StateUnavailable(DOWN_DETAIL) from None
        self.health.ok()
        return reply

    def _unknown(self, prediction_id: str) -> str:
        where = f"the replicas remember, or than {self.ttl} s"
        return unknown(prediction_id, self.remembered, where)

    async def accuracy(self) -> dict[str, dict[str, Any]]:
        try:
            counters: dict[str, str] = await self.client.hgetall(  # type: ignore[assignment]
                f"{self.prefix}accuracy"
            )
        except STORE_ERRORS as exc:
            self.health.failed("reading live accuracy", exc)
            raise StateUnavailable(DOWN_DETAIL) from None
        self.health.ok()
        versions = sorted(name[2:] for name in counters if name.startswith("f:"))
        return {
            v: accuracy_row(int(counters[f"f:{v}"]), int(counters.get(f"c:{v}", 0)))
            for v in versions
        }

    def state(self) -> StateKind:
        return "shared" if self.health.available else "unavailable"

    async def aclose(self) -> None:
        """Write what is queued (a short try) and close the connections."""
        if self._pending and self.health.available:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.flush(), timeout=2.0)
        await self.client.aclose()


def client_password(client: Redis) -> str | None:
    """The password the client was given (to blank it in logged messages)."""
    password = client.connection_pool.connection_kwargs.get("password")
    return str(password) if password else None
