"""Per-job training checkpoints under DATA_DIR/checkpoints/<job_id>.pt, written atomically.

After every epoch `fit` saves the model, optimizer, scheduler, the generators' states (batch
order, augmentation), the epoch, the history, the early-stopping state and the MLflow run
id. A job interrupted by a crash resumes from it when the service starts again (see
`jobs.lifecycle.recover_interrupted`); a job that ends (any final state) deletes it.

The path helpers are torch-free (the API process asks whether a checkpoint exists); saving
and loading import torch when called.
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path
from typing import Any

_JOB_ID = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")


def checkpoint_path(checkpoints_dir: Path, job_id: str) -> Path:
    if not _JOB_ID.match(job_id):
        raise ValueError(f"not a job id: {job_id!r}")
    return checkpoints_dir / f"{job_id}.pt"


class CheckpointFile:
    """One job's checkpoint: `load` (None when absent), `save` (atomic), `delete`."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def exists(self) -> bool:
        return self.path.is_file()

    def load(self) -> dict[str, Any] | None:
        if not self.path.is_file():
            return None
        import torch

        # Our own checkpoint, written by save() in DATA_DIR, and read with weights_only=True:
        # torch's restricted loader accepts tensors and plain containers, never arbitrary code.
        state: dict[str, Any] = torch.load(self.path, map_location="cpu", weights_only=True)  # noqa: TID251
        return state

    def save(self, state: dict[str, Any]) -> None:
        """Write to a temporary file in the same folder, fsync, then rename over the old one:
        a crash leaves either the previous checkpoint or the new one, never half of one."""
        import torch

        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            with temporary.open("wb") as file:
                torch.save(state, file)
                file.flush()
                os.fsync(file.fileno())
            temporary.replace(self.path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                temporary.unlink()

    def delete(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
