"""`python -m training_service.openapi`: write (or check) the committed OpenAPI document.

The document is `app.openapi()` as sorted, 2-space indented JSON with a final newline, the
same bytes the repository's root `scripts/export_openapi.py` writes, so either tool may
regenerate `openapi.json` without a diff. The app is built with `ENVIRONMENT=local` unless
the environment says otherwise: no token is needed, no server starts, nothing touches the
network (the lifespan, which opens stores and workers, is not entered).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

DEFAULT_PATH = Path(__file__).resolve().parents[2] / "openapi.json"


def document() -> dict[str, Any]:
    """The OpenAPI document of the app (settings do not change it)."""
    # Only to build the app: a missing API_TOKEN must not stop an export.
    os.environ.setdefault("ENVIRONMENT", "local")
    from training_service.app import create_app

    return create_app().openapi()


def render(doc: dict[str, Any]) -> str:
    """Deterministic text: byte-identical to the root export script's output."""
    return json.dumps(doc, indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write or check ml-training-service's OpenAPI")
    parser.add_argument("path", nargs="?", type=Path, default=DEFAULT_PATH)
    parser.add_argument("--check", action="store_true", help="exit 1 if the file is stale")
    parser.add_argument("--stdout", action="store_true", help="print instead of writing")
    args = parser.parse_args(argv)
    text = render(document())
    if args.stdout:
        sys.stdout.write(text)
        return 0
    if args.check:
        current = args.path.read_text() if args.path.is_file() else ""
        if current != text:
            print(f"{args.path} is stale: run `make openapi`", file=sys.stderr)
            return 1
        return 0
    args.path.write_text(text)
    print(f"wrote {args.path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
