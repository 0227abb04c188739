"""Micro-batching: concurrent requests share one forward pass and one softmax.

A request hands its shaped batch to the batcher and awaits a future. The first request of an
event-loop turn schedules the flush with `call_soon`, so every request whose bytes arrived in
the same turn joins it; the flush concatenates the batches per model version, calls each model
once, turns the output into probabilities and classes once, and hands every request its rows.
Under load (16 clients on one worker) the model runs once per turn instead of once per
request; a lone request pays one extra loop hop, a few microseconds. The model still runs on
the event loop thread: a hop to a thread pool costs more than the forward pass of a small
model.
"""

from __future__ import annotations

import asyncio

import numpy as np

from serving_service.model import LoadedModel, Scores

# Requests with more rows than this run alone: they gain nothing from sharing a call, and
# joined into thousands of rows they made every request of the turn wait for all of them.
JOIN_MAX_ROWS = 16


class MicroBatcher:
    """Collects the small batches of one event-loop turn and scores them together."""

    def __init__(self) -> None:
        self._pending: list[tuple[LoadedModel, np.ndarray, asyncio.Future[Scores]]] = []

    async def scores(self, model: LoadedModel, batch: np.ndarray) -> Scores:
        """This batch's rows of the model's scores (the same numbers as `model.scores`)."""
        if len(batch) > JOIN_MAX_ROWS:
            return model.scores(batch)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Scores] = loop.create_future()
        self._pending.append((model, batch, future))
        if len(self._pending) == 1:
            loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        groups: dict[int, list[tuple[LoadedModel, np.ndarray, asyncio.Future[Scores]]]] = {}
        for item in pending:
            # Identity, not version: a swap mid-turn must not mix two modules in one call.
            groups.setdefault(id(item[0]), []).append(item)
        for items in groups.values():
            model = items[0][0]
            try:
                if len(items) == 1:
                    outputs = [model.scores(items[0][1])]
                else:
                    joined = model.scores(np.concatenate([batch for _, batch, _ in items]))
                    ends = np.cumsum([len(batch) for _, batch, _ in items]).tolist()
                    outputs = [
                        joined.rows(a, b) for a, b in zip([0, *ends[:-1]], ends, strict=True)
                    ]
            except Exception as exc:  # each caller gets the model's error, as without batching
                for _, _, future in items:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, _, future), out in zip(items, outputs, strict=True):
                if not future.done():  # a client that went away cancelled its future
                    future.set_result(out)
