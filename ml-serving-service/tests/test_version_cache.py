"""Explicit versions that fail to load: no lock left behind, the failure remembered a while.

A counting fake stands in for the registry: what is under test is how often the cache asks
it, which a real MLflow server cannot count. Missing versions against the real registry are
covered end to end in `test_predict.py` (404) and `test_registry_outage.py` (503).
"""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from serving_service.mlmodel import ModelLoadError
from serving_service.model import LoadedModel
from serving_service.registry import RegistryUnavailable, VersionInfo, VersionNotFound
from serving_service.slot import FAILED_VERSIONS_KEPT, VersionCache


class BadVersions:
    """A registry in which no version loads: `broken` ones fail in torch, others are missing."""

    def __init__(self, broken: tuple[str, ...] = (), down: bool = False) -> None:
        self.calls: Counter[str] = Counter()
        self.broken = broken
        self.down = down

    def get_version(self, version: str) -> VersionInfo:
        self.calls[version] += 1
        if self.down:
            raise RegistryUnavailable("MLflow registry unreachable: connection refused")
        if version in self.broken:
            return VersionInfo("m", version, None, {})
        raise VersionNotFound(f"model 'm' has no version '{version}'")

    def load(self, info: VersionInfo) -> LoadedModel:
        raise RuntimeError(f"torch could not read version {info.version}")


def _cache(registry: BadVersions, ttl: float) -> VersionCache:
    return VersionCache(registry, size=4, failed_ttl=ttl)  # type: ignore[arg-type]


async def _errors(cache: VersionCache, versions: list[str]) -> list[BaseException]:
    results = await asyncio.gather(*(cache.get(v) for v in versions), return_exceptions=True)
    assert all(isinstance(r, BaseException) for r in results)
    return [r for r in results if isinstance(r, BaseException)]


@pytest.mark.parametrize("ttl", [0.0, 30.0])
def test_failed_loads_leave_no_lock_behind(ttl: float) -> None:
    cache = _cache(BadVersions(broken=("13",)), ttl)
    versions = [str(900 + i) for i in range(50)] + ["13"] * 3
    errors = asyncio.run(_errors(cache, versions))
    assert cache._locks == {}
    assert {type(e) for e in errors} == {VersionNotFound, ModelLoadError}


def test_a_missing_version_is_answered_from_memory_within_the_ttl() -> None:
    registry = BadVersions()
    cache = _cache(registry, ttl=0.5)

    async def scenario() -> list[str]:
        first = await _errors(cache, ["999"] * 5)  # concurrent: one registry call
        again = await _errors(cache, ["999"] * 5)
        await asyncio.sleep(0.6)
        expired = await _errors(cache, ["999"])
        return [str(e) for e in first + again + expired]

    details = asyncio.run(scenario())
    assert details == ["model 'm' has no version '999'"] * 11
    assert registry.calls == {"999": 2}  # once, then again after the TTL


def test_a_broken_version_is_not_loaded_again_within_the_ttl() -> None:
    registry = BadVersions(broken=("13",))
    cache = _cache(registry, ttl=30)
    errors = asyncio.run(_errors(cache, ["13", "13", "13"]))
    errors += asyncio.run(_errors(cache, ["13"]))
    assert [type(e) for e in errors] == [ModelLoadError] * 4
    assert all("RuntimeError: torch could not read version 13" in str(e) for e in errors)
    assert registry.calls == {"13": 1}


def test_an_unreachable_registry_is_not_asked_again_within_the_ttl() -> None:
    registry = BadVersions(down=True)
    cache = _cache(registry, ttl=30)
    errors = asyncio.run(_errors(cache, ["7", "7"]))
    errors += asyncio.run(_errors(cache, ["7", "8"]))
    assert [type(e) for e in errors] == [RegistryUnavailable] * 4
    assert registry.calls == {"7": 1, "8": 1}


def test_a_ttl_of_zero_asks_the_registry_every_time() -> None:
    registry = BadVersions()
    cache = _cache(registry, ttl=0)
    for _ in range(3):
        asyncio.run(_errors(cache, ["999"]))
    assert registry.calls == {"999": 3}


def test_remembered_failures_are_bounded() -> None:
    registry = BadVersions()
    cache = _cache(registry, ttl=30)
    asyncio.run(_errors(cache, [str(i) for i in range(FAILED_VERSIONS_KEPT + 100)]))
    assert len(cache._failed) == FAILED_VERSIONS_KEPT
    assert cache._locks == {}
