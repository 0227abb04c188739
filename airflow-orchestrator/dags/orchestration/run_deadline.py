"""The pipeline's run deadline: a ``deadline_missed`` alert when a run takes too long.

An Airflow 3 ``DeadlineAlert`` is evaluated by the scheduler, not by the run: when a run is
created, the scheduler stores ``logical_date + interval`` as its deadline; a run that ends
before it deletes the deadline, and one still going when it passes gets the callback
(``alerts.notify_deadline_missed``), run by the executor. The alert does not stop the run.

The reference is the run's logical date (its scheduled time), not ``DAGRUN_QUEUED_AT``:
Airflow 3.3.2 answers 500 to clearing a run whose DAG has a queued-at deadline (it recomputes
that deadline with ``timedelta(seconds=<serialized interval>)``), and clearing a failed run is
how an operator recovers it. A run triggered without a logical date (the REST API's default
in Airflow 3) has no deadline.

The interval is fixed when the DAG file is parsed (a DAG param cannot set it: no run exists
yet when the deadline is computed), so it comes from the dag-processor's environment:
``PIPELINE_DEADLINE_MINUTES`` (default 30).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import timedelta

from airflow.sdk.definitions.callback import SyncCallback
from airflow.sdk.definitions.deadline import DeadlineAlert, DeadlineReference

from orchestration.alerts import notify_deadline_missed

DEADLINE_ENV = "PIPELINE_DEADLINE_MINUTES"
DEFAULT_DEADLINE_MINUTES = 30


def deadline_minutes(environ: Mapping[str, str] | None = None) -> int:
    """``PIPELINE_DEADLINE_MINUTES`` as a positive whole number of minutes (default 30)."""
    raw = (os.environ if environ is None else environ).get(DEADLINE_ENV, "").strip()
    if not raw:
        return DEFAULT_DEADLINE_MINUTES
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError(f"{DEADLINE_ENV} must be a whole number of minutes >= 1, got {raw!r}")
    return int(raw)


def run_deadline(minutes: int | None = None) -> DeadlineAlert:
    """Alert (``deadline_missed``) when a run is still going ``minutes`` after its logical date."""
    minutes = deadline_minutes() if minutes is None else minutes
    return DeadlineAlert(
        reference=DeadlineReference.DAGRUN_LOGICAL_DATE,
        interval=timedelta(minutes=minutes),
        callback=SyncCallback(notify_deadline_missed, kwargs={"deadline_minutes": minutes}),
        name="pipeline_run_deadline",
    )
