"""The browser smoke test of a running stack, shared by the embedded and the container suite.

Headless Chromium opens the pages a user opens first and the checks read them as text, never
as pixels: Airflow lists the four DAGs and shows the pipeline's run as a success; MLflow's
model page shows `production` on the version that run registered. Page access lives in
scripts/ui/pages.py (shared with `make screenshots`); this module holds the assertions.

A suite runs the checks by subclassing `BrowserUiChecks` as a `Test*` class and providing two
fixtures: `ui` (UiTargets: where the UIs answer, how to log in) and `outcome` (UiOutcome: what
the suite's lifecycle run produced). Every URL comes from `ui`, so the same checks prove that
the UIs work on whatever host and port a stack publishes them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import pytest

# Locally a clear skip of the module that imports this one; under CI=true the root conftest
# counts every skip as a failure.
pytest.importorskip("playwright", reason="playwright is missing: make -C integration-tests setup")

from playwright.sync_api import Page, Response  # noqa: E402

from scripts.ui import pages  # noqa: E402
from scripts.ui.browser import chromium, chromium_missing_reason  # noqa: E402
from scripts.ui.pages import UiTargets  # noqa: E402

# Each page gets this long to show what is asserted: seconds normally, more on a loaded CI box.
PAGE_TIMEOUT_MS = 60_000


@dataclass(frozen=True)
class UiOutcome:
    """What the UIs must show after the suite's pipeline + model_management runs."""

    pipeline_run_id: str
    version: str


def origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


class RefusedRequests:
    """Answers >= 400 from one origin while a page loads: why a page stayed empty.

    A Host header or CORS rule that does not accept the published host:port shows up
    here as a 403 on the UI's own API calls, long before the page's content times out.
    """

    def __init__(self, page: Page, base_url: str) -> None:
        self.origin = origin(base_url)
        self.seen: list[str] = []
        page.on("response", self._record)

    def _record(self, response: Response) -> None:
        # 401 is the UI noticing it has no session yet, which is how the login starts.
        refused = response.status >= 400 and response.status != 401
        if refused and origin(response.url) == self.origin:
            self.seen.append(f"{response.status} {response.request.method} {response.url}")

    def __str__(self) -> str:
        return "; ".join(self.seen[-5:]) or "none"


def check_airflow_shows_successful_pipeline_run(
    page: Page, ui: UiTargets, pipeline_run_id: str
) -> None:
    refused = RefusedRequests(page, ui.airflow_url)
    landed = pages.login_airflow(page, ui)
    # The login round trip (UI -> /api/v2/auth/login -> form -> `next`) must stay on the
    # URL the browser used, whatever [api] base_url says.
    expected = f"{ui.airflow_url}/dags"
    assert landed.split("?")[0] == expected, (
        f"logging in from {expected} ended on {landed}; refused requests: {refused}"
    )
    listed = pages.listed_dag_ids(page, ui)
    missing = set(pages.DAG_IDS) - listed
    assert not missing, f"DAG list lacks {sorted(missing)}; it shows {sorted(listed)}"
    state = pages.run_state(page, ui, pages.PIPELINE, pipeline_run_id)
    assert state == "success", f"{pages.PIPELINE} run {pipeline_run_id} shows {state!r}"


def check_mlflow_shows_production_alias(page: Page, ui: UiTargets, version: str) -> None:
    refused = RefusedRequests(page, ui.mlflow_url)
    pages.log_in_to_mlflow(page.context, ui)  # basic auth, as the read-only login
    # MLflow answers 403 "Invalid Host header" to a host:port its --allowed-hosts lacks.
    answer = page.goto(f"{ui.mlflow_url}/")
    assert answer is not None and answer.ok, (
        f"MLflow's UI at {ui.mlflow_url} answered "
        f"{answer.status if answer else 'nothing'}: {answer.text()[:200] if answer else ''}"
    )
    aliases = pages.version_aliases(page, ui, version)
    assert "production" in aliases, (
        f"Version {version} shows aliases {aliases}; refused requests: {refused}"
    )


class BrowserUiChecks:
    """The browser smoke test; a suite subclasses it as `TestBrowserUi` (see the docstring)."""

    @pytest.fixture(scope="class")
    @classmethod
    def page(cls) -> Iterator[Page]:
        reason = chromium_missing_reason()
        if reason:
            pytest.skip(reason)
        with chromium(PAGE_TIMEOUT_MS) as context:
            yield context.new_page()

    def test_airflow_ui_lists_the_dags_and_the_successful_pipeline_run(
        self, ui: UiTargets, outcome: UiOutcome, page: Page
    ) -> None:
        check_airflow_shows_successful_pipeline_run(page, ui, outcome.pipeline_run_id)

    def test_mlflow_ui_shows_production_on_the_promoted_version(
        self, ui: UiTargets, outcome: UiOutcome, page: Page
    ) -> None:
        check_mlflow_shows_production_alias(page, ui, outcome.version)
