"""`python -m training_service`: run the API with uvicorn, host and port from settings."""

from __future__ import annotations

import sys

from pydantic import ValidationError
from pydantic_core import ErrorDetails


def main() -> None:
    import uvicorn

    from training_service.app import create_app
    from training_service.config import get_settings
    from training_service.logs import configure_logging

    try:
        settings = get_settings()
    except ValidationError as exc:  # refuse to start, saying which variable to fix
        messages = "; ".join(_describe(e) for e in exc.errors())
        print(f"ml-training-service: configuration error: {messages}", file=sys.stderr)
        raise SystemExit(2) from None
    configure_logging(settings.log_level, settings.log_format)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        log_config=None,  # uvicorn's loggers propagate to the handler configured above
        access_log=False,  # the service writes its own access line, with route and request id
        # On SIGTERM: stop accepting, let in-flight requests finish for this long, then exit
        # (uvicorn's default waits for them forever, past any orchestrator's kill timeout).
        timeout_graceful_shutdown=settings.shutdown_grace_seconds,
    )


def _describe(error: ErrorDetails) -> str:
    """The error with the variable to fix, e.g. "LOG_FORMAT: Input should be 'json' or 'text'"."""
    message = str(error["msg"]).removeprefix("Value error, ")
    variable = "_".join(str(part) for part in error.get("loc", ())).upper()
    return f"{variable}: {message}" if variable else message


if __name__ == "__main__":
    main()
