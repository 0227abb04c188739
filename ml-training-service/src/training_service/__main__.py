"""`python -m training_service`: run the API with uvicorn, host and port from settings."""

from __future__ import annotations

import logging
import sys

from pydantic import ValidationError


def main() -> None:
    import uvicorn

    from training_service.app import create_app
    from training_service.config import get_settings

    try:
        settings = get_settings()
    except ValidationError as exc:  # refuse to start, saying which variable to fix
        messages = "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())
        print(f"ml-training-service: configuration error: {messages}", file=sys.stderr)
        raise SystemExit(2) from None
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        access_log=False,  # request counts and latencies are in /metrics
    )


if __name__ == "__main__":
    main()
