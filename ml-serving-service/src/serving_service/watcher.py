"""Background alias polling and the load -> smoke test -> swap sequence.

A new version is loaded beside the serving one, tested on a sample input and only then
published; a version that fails either step is refused and remembered, so the old one keeps
serving and the poller does not retry the same broken version every interval. The version it
replaced is collected as soon as the last request using it ends (see `_collect_retired`).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import weakref
from dataclasses import dataclass

from serving_service.metrics import (
    MODEL_SWAPS,
    REGISTRY_UP,
    publish_model_version,
    publish_refusal,
)
from serving_service.mlmodel import ModelLoadError, UnsafeModel
from serving_service.model import LoadedModel, SmokeTestError
from serving_service.registry import Registry, RegistryUnavailable, VersionNotFound
from serving_service.slot import ModelSlot

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CheckResult:
    """Outcome of one alias check."""

    version: str | None
    swapped: bool


class AliasWatcher:
    """Keeps `slot.current` on the version the alias points to."""

    def __init__(self, registry: Registry, slot: ModelSlot, interval: float) -> None:
        self.registry = registry
        self.slot = slot
        self.interval = interval
        self._lock = asyncio.Lock()
        # Models swapped out but still alive (a request was using them), by weak reference.
        self._retired: list[weakref.ref[LoadedModel]] = []

    async def run(self) -> None:
        """Poll forever; cancelled on shutdown."""
        while True:
            try:
                await self.check(retry_refused=False)
            except Exception:  # the poller must survive anything a single check does
                log.exception("alias check failed unexpectedly")
            await asyncio.sleep(self.interval)

    async def check(self, retry_refused: bool = True) -> CheckResult:
        """Resolve the alias now and swap if it moved; one check at a time."""
        async with self._lock:
            return await asyncio.to_thread(self._check_and_collect, retry_refused)

    def _check_and_collect(self, retry_refused: bool) -> CheckResult:
        result = self._check_sync(retry_refused)
        self._collect_retired()  # after the check's own references to the old model are gone
        return result

    def _check_sync(self, retry_refused: bool) -> CheckResult:
        slot = self.slot
        current = slot.current
        try:
            info = self.registry.resolve_alias(slot.alias)
        except RegistryUnavailable as exc:
            self._registry_state(False, str(exc))
            log.warning("registry unreachable, still serving %s: %s", _v(current), exc)
            return CheckResult(current.version if current else None, False)
        except VersionNotFound as exc:
            self._registry_state(True, str(exc))
            if current is not None:
                log.warning("%s; still serving version %s", exc, current.version)
            return CheckResult(current.version if current else None, False)
        self._registry_state(True, None)
        if current is not None and info.version == current.version:
            self._clear_refusal()  # the alias moved back to the serving version
            return CheckResult(info.version, False)
        if info.version in slot.refused and not retry_refused:
            return CheckResult(current.version if current else None, False)
        try:
            candidate = self.registry.load(info)
            candidate.smoke_test()
        except RegistryUnavailable as exc:
            self._registry_state(False, str(exc))
            log.warning("could not fetch version %s: %s", info.version, exc)
            return CheckResult(current.version if current else None, False)
        except (ModelLoadError, SmokeTestError, VersionNotFound) as exc:
            result = "smoke_test_failed" if isinstance(exc, SmokeTestError) else "load_failed"
            if isinstance(exc, UnsafeModel):
                result = "unsafe"
            return self._refuse(info.version, result, str(exc))
        except Exception as exc:  # anything else from torch/MLflow is a broken version too
            return self._refuse(info.version, "load_failed", f"{type(exc).__name__}: {exc}")
        previous = slot.swap(candidate)
        slot.refused.pop(info.version, None)
        self._clear_refusal()
        MODEL_SWAPS.labels(result="success").inc()
        publish_model_version(
            slot.name, slot.alias, candidate.version, previous.version if previous else None
        )
        log.info(
            "alias %s@%s: now serving version %s (was %s)",
            slot.name,
            slot.alias,
            candidate.version,
            _v(previous),
        )
        if previous is not None:
            self._retired.append(weakref.ref(previous))
        return CheckResult(candidate.version, True)

    def _collect_retired(self) -> None:
        """Free the memory of swapped-out models now, or at the next check if still in use.

        A model's graph (its nodes and their metadata) sits in reference cycles, which only
        the cyclic collector frees, and `app.calm_garbage_collector` makes full collections
        rare. The runtime is frozen at startup, so this collection only walks what was
        allocated since, a small part of the heap. Nothing is frozen after a swap: a frozen
        model would never be freed.
        """
        if not self._retired:
            return
        gc.collect()
        self._retired = [ref for ref in self._retired if ref() is not None]

    def _refuse(self, version: str, result: str, reason: str) -> CheckResult:
        current = self.slot.current
        self.slot.refused[version] = reason
        self.slot.refused_now = {"version": version, "result": result, "reason": reason}
        MODEL_SWAPS.labels(result=result).inc()
        publish_refusal(version, result)
        log.error(
            "refused version %s of %s (%s): %s; still serving %s",
            version,
            self.slot.name,
            result,
            reason,
            _v(current),
        )
        return CheckResult(current.version if current else None, False)

    def _clear_refusal(self) -> None:
        if self.slot.refused_now is not None:
            self.slot.refused_now = None
            publish_refusal(None, None)

    def _registry_state(self, reachable: bool, error: str | None) -> None:
        self.slot.registry_reachable = reachable
        self.slot.last_error = error
        REGISTRY_UP.set(1 if reachable else 0)


def _v(model: object) -> str:
    return getattr(model, "version", None) or "nothing"
