"""Micro-batching: concurrent requests share one forward pass and one softmax, on the event
loop when the model is cheap, on the scoring thread when it is not.

A request hands its shaped batch to the batcher and awaits a future. Cheap batches (up to
the model's `inline_rows`, measured when it loaded) run on the event loop: the first request
of a loop turn schedules the flush with `call_soon`, so every request whose bytes arrived in
the same turn joins it; the flush concatenates the batches per model version, calls each
model once and hands every request its rows. Under load (16 clients on one worker) the model
runs once per turn instead of once per request; a lone request pays one extra loop hop, a
few microseconds. For a small model this beats any thread: a hop to a pool costs more than
its forward pass.

Batches a model cannot score within its budget (a large network, or thousands of rows, also
when a turn's small requests add up to them) go to the scoring thread instead: torch
releases the GIL while it computes, so the loop keeps answering `/health` and the cheap
requests. While one call runs there, the requests that arrive queue up and the next call
takes them together (up to `THREAD_JOIN_MAX_ROWS` rows), so a heavy model under load still
scores in batches.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from concurrent.futures import Executor, ThreadPoolExecutor

import numpy as np

from serving_service.model import LoadedModel, Scores

# Requests with more rows than this run alone: they gain nothing from sharing a call, and
# joined into thousands of rows they made every request of the turn wait for all of them.
JOIN_MAX_ROWS = 16
# Rows one call on the scoring thread takes from the queue at most.
THREAD_JOIN_MAX_ROWS = 64

Pending = tuple[LoadedModel, np.ndarray, "asyncio.Future[Scores]"]


class MicroBatcher:
    """Collects the small batches of one event-loop turn and scores them together."""

    def __init__(self, executor: Executor | None = None) -> None:
        self._pending: list[Pending] = []
        self._queued: list[Pending] = []
        self._drain: asyncio.Task[None] | None = None
        self._executor = executor or ThreadPoolExecutor(1, thread_name_prefix="scoring")

    def close(self) -> None:
        """Stop the scoring thread once the calls it runs end (at shutdown)."""
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def scores(self, model: LoadedModel, batch: np.ndarray) -> Scores:
        """This batch's rows of the model's scores (the same numbers as `model.scores`)."""
        rows = len(batch)
        if JOIN_MAX_ROWS < rows <= model.inline_rows:
            return model.scores(batch)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Scores] = loop.create_future()
        if rows > model.inline_rows:
            self._queued.append((model, batch, future))
            if self._drain is None:
                self._drain = loop.create_task(self._run_queued())
            return await future
        self._pending.append((model, batch, future))
        if len(self._pending) == 1:
            loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        rows: dict[int, int] = {}
        for model, batch, _ in pending:
            rows[id(model)] = rows.get(id(model), 0) + len(batch)
        # A turn's requests joined may be more than the model scores within its budget.
        heavy = [p for p in pending if rows[id(p[0])] > p[0].inline_rows]
        if heavy:
            pending = [p for p in pending if rows[id(p[0])] <= p[0].inline_rows]
            self._queued.extend(heavy)
            if self._drain is None:
                self._drain = asyncio.get_running_loop().create_task(self._run_queued())
        _deliver(pending, score_together(pending))

    async def _run_queued(self) -> None:
        """Score the queue on the scoring thread, one joined call at a time, until empty."""
        loop = asyncio.get_running_loop()
        try:
            while self._queued:
                taken = self._take()
                try:
                    outputs = await loop.run_in_executor(self._executor, score_together, taken)
                except Exception as exc:  # the executor itself failed (shut down)
                    outputs = [exc] * len(taken)
                _deliver(taken, outputs)
        finally:
            self._drain = None

    def _take(self) -> list[Pending]:
        """The queue's head: one large batch alone, or small ones up to the row limit."""
        queued = self._queued
        rows, count = len(queued[0][1]), 1
        if rows <= JOIN_MAX_ROWS:
            while (
                count < len(queued)
                and len(queued[count][1]) <= JOIN_MAX_ROWS
                and rows + len(queued[count][1]) <= THREAD_JOIN_MAX_ROWS
            ):
                rows += len(queued[count][1])
                count += 1
        taken, self._queued = queued[:count], queued[count:]
        return taken


def score_together(items: Sequence[Pending]) -> list[Scores | Exception]:
    """Each item's scores, one model call per model (by identity) with the rows joined.

    Identity, not version: a swap mid-turn must not mix two modules in one call. A model's
    error reaches every caller of that call, as without batching. Runs on either thread: it
    touches no future.
    """
    outputs: list[Scores | Exception | None] = [None] * len(items)
    groups: dict[int, list[int]] = {}
    for i, (model, _, _) in enumerate(items):
        groups.setdefault(id(model), []).append(i)
    for indices in groups.values():
        model = items[indices[0]][0]
        try:
            if len(indices) == 1:
                outputs[indices[0]] = model.scores(items[indices[0]][1])
                continue
            joined = model.scores(np.concatenate([items[i][1] for i in indices]))
        except Exception as exc:
            for i in indices:
                outputs[i] = exc
            continue
        start = 0
        for i in indices:
            end = start + len(items[i][1])
            outputs[i] = joined.rows(start, end)
            start = end
    return [out for out in outputs if out is not None]


def _deliver(items: Sequence[Pending], outputs: Sequence[Scores | Exception]) -> None:
    for (_, _, future), out in zip(items, outputs, strict=True):
        if future.done():  # a client that went away cancelled its future
            continue
        if isinstance(out, Exception):
            future.set_exception(out)
        else:
            future.set_result(out)
