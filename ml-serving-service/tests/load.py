"""A bounded background load generator that records every response during a swap."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import httpx


@dataclass
class LoadResult:
    statuses: list[int] = field(default_factory=list)
    versions: list[list[str]] = field(default_factory=list)  # per thread, in order
    errors: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return len(self.statuses)


class BackgroundLoad:
    """`threads` clients posting the same batch back to back until stopped (or max_seconds)."""

    def __init__(self, url: str, payload: dict, threads: int = 4, max_seconds: float = 90.0):
        self.url = url
        self.payload = payload
        self.max_seconds = max_seconds
        self.result = LoadResult(versions=[[] for _ in range(threads)])
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(threads)
        ]

    def __enter__(self) -> BackgroundLoad:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=30)

    def seen(self, version: str) -> bool:
        with self._lock:
            return any(version in seq for seq in self.result.versions)

    def _run(self, index: int) -> None:
        deadline = time.monotonic() + self.max_seconds
        with httpx.Client(timeout=30) as client:
            while not self._stop.is_set() and time.monotonic() < deadline:
                try:
                    r = client.post(self.url, json=self.payload)
                except httpx.HTTPError as exc:
                    with self._lock:
                        self.result.errors.append(repr(exc))
                    continue
                with self._lock:
                    self.result.statuses.append(r.status_code)
                    if r.status_code == 200:
                        self.result.versions[index].append(r.json()["model"]["version"])
                    else:
                        self.result.errors.append(f"{r.status_code}: {r.text[:200]}")
