"""Where the serving model lives: one reference, swapped atomically.

Requests read `slot.current` once and use that object to the end, so a swap never changes
a model under an in-flight request, and the old version is freed when the last one ends.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from dataclasses import dataclass, field

from serving_service.model import LoadedModel
from serving_service.registry import Registry


@dataclass
class ModelSlot:
    """The alias's current model plus what the poller last learned about the registry."""

    name: str
    alias: str
    current: LoadedModel | None = None
    registry_reachable: bool | None = None
    last_error: str | None = None
    refused: dict[str, str] = field(default_factory=dict)

    def swap(self, model: LoadedModel) -> LoadedModel | None:
        """Publish a smoke-tested model; returns the one it replaces."""
        previous, self.current = self.current, model
        return previous

    def missing_detail(self) -> str:
        """Why nothing is served yet, phrased as what to do about it."""
        if self.registry_reachable is False:
            return (
                f"no model loaded: the MLflow registry is unreachable ({self.last_error}); "
                f"the service loads '{self.name}@{self.alias}' as soon as it answers"
            )
        if self.refused:
            version, reason = next(reversed(self.refused.items()))
            return (
                f"no model loaded: version '{version}' of '{self.name}' "
                f"(alias '{self.alias}') was refused: {reason}"
            )
        return (
            f"model '{self.name}' has no version with alias '{self.alias}'; "
            "run the training pipeline first"
        )


class VersionCache:
    """Explicitly requested versions, loaded on demand and kept in a small LRU cache."""

    def __init__(self, registry: Registry, size: int) -> None:
        self._registry = registry
        self._size = size
        self._models: OrderedDict[str, LoadedModel] = OrderedDict()
        self._locks: dict[str, asyncio.Lock] = {}

    async def get(self, version: str) -> LoadedModel:
        model = self._models.get(version)
        if model is not None:
            self._models.move_to_end(version)
            return model
        # One load per version even when many requests ask for it at once.
        lock = self._locks.setdefault(version, asyncio.Lock())
        async with lock:
            model = self._models.get(version)
            if model is None:
                model = await asyncio.to_thread(self._load, version)
                self._models[version] = model
                while len(self._models) > self._size:
                    self._models.popitem(last=False)
        self._locks.pop(version, None)
        return model

    def _load(self, version: str) -> LoadedModel:
        model = self._registry.load(self._registry.get_version(version))
        model.smoke_test()
        return model
