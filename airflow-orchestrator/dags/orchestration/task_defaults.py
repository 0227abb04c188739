"""Task defaults shared by the pipeline DAGs: owner, retries with exponential backoff, timeouts,
and the pool that bounds concurrent training submissions."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

OWNER = "ml-platform"
# The Airflow pool every task that POSTs /v1/train runs in: its slots (TRAINING_POOL_SLOTS,
# default 1) bound how many training jobs the DAGs submit at once, across every worker. The
# pool must exist (docker-compose.yml's airflow-init and the embedded stack create it), or
# the task waits in `scheduled` for ever.
TRAINING_POOL = "training"


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
