"""How this service's MLflow clients behave when MLflow is slow or down.

MLflow's client retries a failed request 7 times with exponential backoff and waits up to
120 s for an answer: during an outage one call takes minutes, and a job stalls with its run
left RUNNING. The service bounds that with MLflow's own environment variables
(`MLFLOW_HTTP_REQUEST_*`, settings of this service with shorter defaults), set in every
process that talks to MLflow; an outage then surfaces within seconds as an
`MlflowUnavailableError` naming the tracking URI, and the job fails with it. The run the
outage left RUNNING is ended by `recovery.RunCloser` once MLflow answers again.

No MLflow import here: the API process uses this module.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

#: The substring MLflow's REST client puts in every error about a request it could not make.
_REQUEST_FAILED = "API request to "


class MlflowUnavailableError(RuntimeError):
    """MLflow did not answer. `run_left_running`: the job's run could not be ended."""

    def __init__(
        self, tracking_uri: str, cause: BaseException, run_id: str | None, run_left_running: bool
    ) -> None:
        reason = " ".join(str(cause).split())[:300]
        super().__init__(
            f"MLflow tracking server {tracking_uri} did not answer ({reason}); "
            "check MLFLOW_TRACKING_URI and the server, then submit the job again"
        )
        self.run_id = run_id
        self.run_left_running = run_left_running


def is_mlflow_outage(exc: BaseException) -> bool:
    """Did `exc` (or what caused it) come from MLflow's server not answering?

    MLflow wraps connection errors and timeouts of its REST client in an MlflowException
    whose message starts "API request to <url> failed"; requests' own errors can surface too.
    """
    seen: BaseException | None = exc
    while seen is not None:
        module = type(seen).__module__
        if module.startswith(("requests.", "urllib3.")) and any(
            base.__name__ in {"ConnectionError", "Timeout", "MaxRetryError"}
            for base in type(seen).__mro__
        ):
            return True
        if type(seen).__name__ == "MlflowException" and str(seen).startswith(_REQUEST_FAILED):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def apply_client_environment(environment: Mapping[str, str]) -> None:
    """Set MLflow's HTTP retry and timeout variables in this process (MLflow reads them on
    every request, so this works before or after importing it)."""
    os.environ.update(environment)
