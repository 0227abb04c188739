"""The stack as users see it: headless Chromium reads the Airflow and MLflow UIs.

Runs after the session's lifecycle (`promoted_run`) and asserts on page content, not
pixels: Airflow lists the four DAGs and shows the pipeline's run as a success; MLflow's
model page shows `production` on the version that run produced. The checks live in
scripts/ui/smoke.py (on top of scripts/ui/pages.py, shared with `make screenshots`) and take
plain URLs (UiTargets), so the container suite can run them against its published ports.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from lifecycle import PromotedRun
from scripts.embedded.stack import Stack

pytest.importorskip("playwright", reason="playwright is missing: make -C integration-tests setup")

from playwright.sync_api import Page  # noqa: E402

from scripts.ui import smoke  # noqa: E402
from scripts.ui.browser import chromium, chromium_missing_reason  # noqa: E402
from scripts.ui.pages import UiTargets  # noqa: E402

# Each page gets this long to show what is asserted: seconds normally, more on a loaded CI box.
PAGE_TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def ui(stack: Stack) -> UiTargets:
    return UiTargets.from_stack_config(stack.cfg)


@pytest.fixture(scope="module")
def page() -> Iterator[Page]:
    reason = chromium_missing_reason()
    if reason:
        # Locally a clear skip; under CI=true the root conftest counts it as a failure.
        pytest.skip(reason)
    with chromium(PAGE_TIMEOUT_MS) as context:
        yield context.new_page()


def test_airflow_ui_lists_the_dags_and_the_successful_pipeline_run(
    ui: UiTargets, promoted_run: PromotedRun, page: Page
) -> None:
    smoke.check_airflow_shows_successful_pipeline_run(page, ui, promoted_run.pipeline.run_id)


def test_mlflow_ui_shows_production_on_the_promoted_version(
    ui: UiTargets, promoted_run: PromotedRun, page: Page
) -> None:
    smoke.check_mlflow_shows_production_alias(page, ui, promoted_run.version)
