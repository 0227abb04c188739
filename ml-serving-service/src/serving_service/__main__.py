"""`python -m serving_service`: run uvicorn with host, port and workers from settings."""

from __future__ import annotations

import logging.config

import uvicorn

from serving_service.config import get_settings
from serving_service.logs import log_config


def main() -> None:
    settings = get_settings()  # fail fast (e.g. missing API_TOKEN) before spawning workers
    logging_config = log_config(settings.log_level, settings.log_format)
    logging.config.dictConfig(logging_config)
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
    )


if __name__ == "__main__":
    main()
