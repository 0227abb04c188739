"""Where the serving model lives: one reference, swapped atomically.

Requests read `slot.current` once and use that object to the end, so a swap never changes
a model under an in-flight request, and the old version is freed when the last one ends.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from dataclasses import dataclass, field

from serving_service.mlmodel import ModelLoadError
from serving_service.model import LoadedModel, SmokeTestError
from serving_service.registry import Registry, RegistryUnavailable, VersionNotFound

# Errors a version's load ends with; anything else is wrapped in a ModelLoadError.
KNOWN_FAILURES = (VersionNotFound, RegistryUnavailable, ModelLoadError, SmokeTestError)
# Failed versions remembered at most, however many distinct ones requests name.
FAILED_VERSIONS_KEPT = 1024


@dataclass
class ModelSlot:
    """The alias's current model plus what the poller last learned about the registry."""

    name: str
    alias: str
    current: LoadedModel | None = None
    registry_reachable: bool | None = None
    last_error: str | None = None
    refused: dict[str, str] = field(default_factory=dict)
    # The version the alias points to now, when it was refused: version, result, reason.
    refused_now: dict[str, str] | None = None

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
    """Explicitly requested versions, loaded on demand and kept in a small LRU cache.

    A version that fails to load (unknown, broken, or the registry is down) is remembered for
    `failed_ttl` seconds and answered with the same error at once: otherwise every request
    naming it would block a worker thread of the shared pool on MLflow again. The alias
    watcher does not use this cache, so its retries and `POST /v1/model/reload` are unaffected.
    """

    def __init__(self, registry: Registry, size: int, failed_ttl: float) -> None:
        self._registry = registry
        self._size = size
        self._failed_ttl = failed_ttl
        self._models: OrderedDict[str, LoadedModel] = OrderedDict()
        # One entry per version being loaded right now; removed whatever the load does.
        self._locks: dict[str, asyncio.Lock] = {}
        # version -> (monotonic deadline, the error), oldest first.
        self._failed: OrderedDict[str, tuple[float, Exception]] = OrderedDict()

    async def get(self, version: str) -> LoadedModel:
        model = self._models.get(version)
        if model is not None:
            self._models.move_to_end(version)
            return model
        self._raise_if_failed(version)
        # One load per version even when many requests ask for it at once.
        lock = self._locks.setdefault(version, asyncio.Lock())
        try:
            async with lock:
                model = self._models.get(version)
                if model is None:
                    self._raise_if_failed(version)  # the request we waited for failed
                    try:
                        model = await asyncio.to_thread(self._load, version)
                    except KNOWN_FAILURES as exc:
                        self._remember_failure(version, exc)
                        raise
                    self._models[version] = model
                    while len(self._models) > self._size:
                        self._models.popitem(last=False)
        finally:
            if self._locks.get(version) is lock:
                del self._locks[version]
        return model

    def _load(self, version: str) -> LoadedModel:
        try:
            model = self._registry.load(self._registry.get_version(version))
            model.smoke_test()
        except KNOWN_FAILURES:
            raise
        except Exception as exc:  # anything else from torch/MLflow is a broken version too
            raise ModelLoadError(f"{type(exc).__name__}: {exc}") from exc
        return model

    def _remember_failure(self, version: str, error: Exception) -> None:
        if self._failed_ttl <= 0:
            return
        now = time.monotonic()
        while self._failed and next(iter(self._failed.values()))[0] <= now:
            self._failed.popitem(last=False)
        self._failed.pop(version, None)
        self._failed[version] = (now + self._failed_ttl, error)
        while len(self._failed) > FAILED_VERSIONS_KEPT:
            self._failed.popitem(last=False)

    def _raise_if_failed(self, version: str) -> None:
        failed = self._failed.get(version)
        if failed is None:
            return
        deadline, error = failed
        if deadline <= time.monotonic():
            del self._failed[version]
            return
        # A fresh exception each time: re-raising one object would grow its traceback.
        raise type(error)(*error.args)
