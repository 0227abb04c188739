"""`python -m serving_service`: run uvicorn with host, port and workers from settings.

On SIGTERM uvicorn closes the listener (new connections are refused from then on), lets the
requests in flight finish for up to `SHUTDOWN_GRACE_SECONDS`, cancels what is left and runs
the lifespan shutdown; the process then exits with status 0.
"""

from __future__ import annotations

import logging.config
import signal
from types import FrameType

import uvicorn

from serving_service.config import get_settings
from serving_service.logs import log_config


def main() -> None:
    settings = get_settings()  # fail fast (e.g. missing API_TOKEN) before spawning workers
    logging_config = log_config(settings.log_level, settings.log_format)
    logging.config.dictConfig(logging_config)
    # uvicorn re-raises the signal it stopped on with the handler found at start, which by
    # default kills the process (status -15): a completed graceful stop is a clean exit.
    signal.signal(signal.SIGTERM, _exit_cleanly)
    uvicorn.run(
        "serving_service.main:app",
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        log_level=settings.log_level,
        log_config=logging_config,
        # Per-request access logs cost more than a small model's forward pass; with
        # LOG_LEVEL=debug the service logs each request itself, with its request id.
        access_log=False,
        loop="uvloop",
        http="httptools",
        timeout_graceful_shutdown=settings.shutdown_grace_seconds,
    )


def _exit_cleanly(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


if __name__ == "__main__":
    main()
