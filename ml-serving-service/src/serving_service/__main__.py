"""`python -m serving_service`: run uvicorn with host, port and workers from settings."""

from __future__ import annotations

import logging

import uvicorn

from serving_service.config import get_settings


def main() -> None:
    settings = get_settings()  # fail fast (e.g. missing API_TOKEN) before spawning workers
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    uvicorn.run(
        "serving_service.main:app",
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        log_level=settings.log_level,
        # Per-request access logs cost more than a small model's forward pass.
        access_log=False,
        loop="uvloop",
        http="httptools",
    )


if __name__ == "__main__":
    main()
