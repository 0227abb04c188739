"""The container stack as users see it: the shared browser smoke test (tests/ui_checks.py).

Same checks as the embedded suite, through the ports the containers publish on 127.0.0.1
(random, so neither Airflow's [api] base_url nor MLflow's --allowed-hosts may assume one):
Airflow lists the four DAGs and shows the `promoted` pipeline run as a success, MLflow's
model page shows `production` on the version it produced. This file runs after
test_container_stack.py, so the MLflow it reads is the recreated container.

The pages are https:// through the TLS proxy. Chromium on Linux takes extra CAs only from an
NSS database (made with certutil, which this machine lacks), so the browser trusts the proxy's
key instead: `--ignore-certificate-errors-spki-list` with the SHA-256 of the session
certificate's public key. Any other certificate is still refused.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import tls
from container_stack import ContainerStack
from playwright.sync_api import Page
from ui_checks import PAGE_TIMEOUT_MS, BrowserUiChecks, UiOutcome

from scripts.ui import browser
from scripts.ui.pages import UiTargets


@pytest.fixture(scope="module")
def ui(container_stack: ContainerStack) -> UiTargets:
    # Looked up now: a recreated or restarted container may publish on a new host port.
    return UiTargets(
        airflow_url=container_stack.url("airflow"),
        airflow_user=container_stack.admin_user,
        airflow_password=container_stack.admin_password,
        mlflow_url=container_stack.url("mlflow"),
        serving_url=container_stack.url("serving"),
        mlflow_password=container_stack.variables["MLFLOW_VIEWER_PASSWORD"],
    )


@pytest.fixture(scope="module")
def outcome(promoted: dict[str, Any]) -> UiOutcome:
    return UiOutcome(promoted["pipeline_run_id"], promoted["version"])


class TestBrowserUi(BrowserUiChecks):
    """Headless Chromium against the containers' published ports."""

    @pytest.fixture(scope="class")
    def page(self, container_stack: ContainerStack) -> Iterator[Page]:
        reason = browser.chromium_missing_reason()
        if reason:
            pytest.skip(reason)
        pin = tls.spki_pin(container_stack.certs / "server.crt")
        flags = [*browser.CHROMIUM_FLAGS, f"--ignore-certificate-errors-spki-list={pin}"]
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(browser, "CHROMIUM_FLAGS", flags)
            with browser.chromium(PAGE_TIMEOUT_MS) as context:
                yield context.new_page()
