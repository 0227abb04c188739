"""The embedded stack as users see it: the shared browser smoke test (tests/ui_checks.py).

Runs after the session's lifecycle (`promoted_run`): Airflow lists the four DAGs and shows
the pipeline's run as a success; MLflow's model page shows `production` on the version that
run produced. The container suite runs the same class against its published ports.
"""

from __future__ import annotations

import pytest
from ui_checks import BrowserUiChecks, UiOutcome

from lifecycle import PromotedRun
from scripts.embedded.stack import Stack
from scripts.ui.pages import UiTargets


@pytest.fixture(scope="module")
def ui(stack: Stack) -> UiTargets:
    return UiTargets.from_stack_config(stack.cfg)


@pytest.fixture(scope="module")
def outcome(promoted_run: PromotedRun) -> UiOutcome:
    return UiOutcome(promoted_run.pipeline.run_id, promoted_run.version)


class TestBrowserUi(BrowserUiChecks):
    """Headless Chromium against the embedded stack's free ports."""
