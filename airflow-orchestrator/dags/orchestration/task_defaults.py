"""Task defaults shared by the pipeline DAGs: owner, retries with exponential backoff, timeouts."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

OWNER = "ml-platform"


def default_task_args(**overrides: Any) -> dict[str, Any]:
    """``default_args`` for a DAG; each retry waits twice as long, capped at five minutes."""
    args: dict[str, Any] = {
        "owner": OWNER,
        "retries": 2,
        "retry_delay": timedelta(seconds=10),
        "retry_exponential_backoff": 2.0,
        "max_retry_delay": timedelta(minutes=5),
        "execution_timeout": timedelta(minutes=10),
    }
    args.update(overrides)
    return args
