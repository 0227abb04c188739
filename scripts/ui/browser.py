"""Headless Chromium for the UI checks: Debian's binary, driven by Playwright.

Playwright's own browser download cannot work offline, so it drives the system Chromium by
path. Each session gets a fresh profile folder, removed afterwards, so no state (cookies,
caches) leaks from one run into the next.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import BrowserContext, sync_playwright

CHROMIUM = Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))

# The flags that let Chromium run here: no GPU, no sandbox (root in a container), and no
# background traffic, which this closed network refuses (many connections at every start).
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

# Wide enough for Airflow's grid and MLflow's tables to show without horizontal scrolling.
VIEWPORT = {"width": 1440, "height": 900}


def chromium_missing_reason() -> str | None:
    """Why the browser cannot start here, or None when it can."""
    if not CHROMIUM.exists():
        return f"{CHROMIUM} not found: run `bash scripts/ensure_chromium.sh`"
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "the playwright package is missing: `make -C integration-tests setup`"
    return None


@contextmanager
def chromium(timeout_ms: float = 30_000) -> Iterator[BrowserContext]:
    """A browser context of a headless Chromium with a fresh profile folder.

    `timeout_ms` bounds every wait of every page (navigation, selectors, assertions).
    """
    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    try:
        with sync_playwright() as pw:
            # A persistent context is the only way to choose --user-data-dir in Playwright;
            # the folder is new and empty, so it is as fresh as a throwaway profile.
            context = pw.chromium.launch_persistent_context(
                profile,
                executable_path=str(CHROMIUM),
                headless=True,
                args=CHROMIUM_FLAGS,
                viewport=VIEWPORT,  # type: ignore[arg-type]
                locale="en-US",
                timezone_id="UTC",
            )
            context.set_default_timeout(timeout_ms)
            try:
                yield context
            finally:
                context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)
