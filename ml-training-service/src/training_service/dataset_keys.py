"""Idempotency keys of `POST /v1/datasets`: which snapshot a key made, from which request.

One small JSON file per key under DATA_DIR/datasets/idempotency-keys/, named by the key's
SHA-256 (any key is a safe file name) and written atomically, so keys survive restarts like
the snapshots they point to. `lock` makes "look the key up, else build and record" one step:
two concurrent requests with the same key make one snapshot.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class DatasetKey:
    """A used key: the fingerprint of the request body it came with, the snapshot it made."""

    key: str
    request_sha256: str
    dataset_id: str


class DatasetKeys:
    """The keys already used, on disk beside the snapshots."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self.lock = threading.Lock()

    def _path(self, key: str) -> Path:
        return self.root / f"{hashlib.sha256(key.encode()).hexdigest()}.json"

    def get(self, key: str) -> DatasetKey | None:
        path = self._path(key)
        if not path.is_file():
            return None
        return DatasetKey(**json.loads(path.read_text()))

    def record(self, entry: DatasetKey) -> None:
        path = self._path(entry.key)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(entry)))
        tmp.replace(path)
