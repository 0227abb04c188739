"""How to reach and read the stack's web pages: Airflow 3's React UI, MLflow's UI, Swagger.

Shared by `make screenshots` and the browser smoke test, so the pages the README shows are
the pages the test checks. Every function waits for the content it needs (bounded by the
context's default timeout) and reads it from the DOM as text, never from pixels.

Selectors were read off Airflow 3.3.2 and MLflow 3.17.2: the `data-testid` attributes of
Airflow's UI and the ARIA roles of MLflow's tables, which change less often than CSS classes.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from urllib.parse import quote

from playwright.sync_api import BrowserContext, Page, Route
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from scripts.embedded.config import StackConfig

MODEL_NAME = "image-classifier"
DAG_IDS = (
    "hello_world",
    "mlflow_orchestration_pipeline",
    "model_management",
    "simple_image_classifier",
)
PIPELINE = "mlflow_orchestration_pipeline"
# The Airflow asset a validated pipeline run updates (the orchestrator's orchestration/assets.py).
STAGING_ASSET = "image-classifier-staging"

# FastAPI's /docs loads Swagger UI from this CDN, which a closed network cannot reach.
SWAGGER_CDN = "https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/"


@dataclass(frozen=True)
class UiTargets:
    """Where the UIs answer and how to log in: an embedded stack or the container stack."""

    airflow_url: str
    airflow_user: str
    airflow_password: str
    mlflow_url: str
    serving_url: str
    # MLflow's read-only login for people (basic auth; see infra/README.md).
    mlflow_user: str = "viewer"
    mlflow_password: str = ""

    @classmethod
    def from_stack_config(cls, cfg: StackConfig) -> UiTargets:
        return cls(
            cfg.airflow_url,
            cfg.airflow_user,
            cfg.airflow_password,
            cfg.mlflow_url,
            cfg.serving_url,
            mlflow_password=cfg.mlflow_password("viewer"),
        )

    def mlflow_headers(self) -> dict[str, str]:
        """`Authorization: Basic ...` of the MLflow login, for its REST API and its UI."""
        pair = f"{self.mlflow_user}:{self.mlflow_password}".encode()
        return {"Authorization": "Basic " + base64.b64encode(pair).decode()}


# --- Airflow -------------------------------------------------------------------------------


def login_airflow(page: Page, ui: UiTargets) -> str:
    """Sign in the way a user does and return the URL the browser lands on.

    Opens the DAG list without a session; Airflow's UI sends the browser through
    /api/v2/auth/login to the simple auth manager's form with `next` = the DAG list, and the
    form returns there with a `_token` cookie. Every hop is built from the address the
    browser used, so a stack published on any host:port must land back on `ui.airflow_url`.
    """
    page.goto(f"{ui.airflow_url}/dags")
    page.wait_for_url(lambda url: "/auth/login" in url)
    page.fill("input[name=username]", ui.airflow_user)
    page.fill("input[name=password]", ui.airflow_password)
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "/auth/login" not in url)
    return page.url


def listed_dag_ids(page: Page, ui: UiTargets, expected: tuple[str, ...] = DAG_IDS) -> set[str]:
    """Open the DAG list and return the DAG ids it shows as links.

    Waits for the first expected id, then reads every `/dags/<id>` link: the list renders
    all cards of one page at once, so the others are there by then.
    """
    page.goto(f"{ui.airflow_url}/dags")
    page.get_by_text(expected[0], exact=True).wait_for()
    hrefs = page.locator('a[href^="/dags/"]').evaluate_all("links => links.map(a => a.pathname)")
    return {href.split("/")[2] for href in hrefs if href.count("/") == 2}


def open_dag_grid(page: Page, ui: UiTargets, dag_id: str, run_id: str) -> None:
    """Open a DAG's overview, whose left pane is the grid, and wait for the run's cells."""
    page.goto(f"{ui.airflow_url}/dags/{quote(dag_id)}")
    page.locator(f'[data-run-id="{run_id}"]').first.wait_for()


def open_asset(page: Page, ui: UiTargets, asset_id: int, name: str) -> None:
    """Open an asset's page: its graph links the DAG that updates it to the DAG it schedules."""
    page.goto(f"{ui.airflow_url}/assets/{asset_id}")
    page.get_by_text(name).first.wait_for()
    page.get_by_text("model_management").first.wait_for()


def run_state(page: Page, ui: UiTargets, dag_id: str, run_id: str) -> str:
    """The state the DAG's Runs tab shows for one run, lower-cased ("success", "failed"...)."""
    page.goto(f"{ui.airflow_url}/dags/{quote(dag_id)}/runs")
    row = page.locator("tr").filter(
        has=page.locator('[data-testid="table-cell-dag_run_id"]', has_text=run_id)
    )
    cell = row.locator('[data-testid="table-cell-state"]')
    cell.wait_for()
    return cell.inner_text().strip().lower()


# --- MLflow ---------------------------------------------------------------------------------


def keep_mlflow_assistant_closed(context: BrowserContext, ui: UiTargets) -> None:
    """MLflow 3.17 opens its assistant panel on first load; it hides a third of each page.

    The UI remembers both facts in localStorage: say it has auto-opened already and that
    the panel is closed, before any of MLflow's scripts run.
    """
    origin = ui.mlflow_url.rstrip("/")
    context.add_init_script(
        f"""if (location.origin === {origin!r}) {{
            localStorage.setItem("mlflow.assistant.fab.autoOpenedOnFirstLoad_v1", "true");
            localStorage.setItem("mlflow.assistant.panelOpen_v1", "false");
        }}"""
    )


def log_in_to_mlflow(context: BrowserContext, ui: UiTargets) -> None:
    """Send the MLflow login with every request to MLflow's origin (and nowhere else)."""
    origin = ui.mlflow_url.rstrip("/")
    headers = ui.mlflow_headers()

    def with_login(route: Route) -> None:
        route.continue_(headers={**route.request.headers, **headers})

    context.route(f"{origin}/**", with_login)


def version_aliases(page: Page, ui: UiTargets, version: str, model: str = MODEL_NAME) -> list[str]:
    """Open the registered model's page and return the aliases on `Version <version>`'s row."""
    page.goto(f"{ui.mlflow_url}/#/models/{quote(model)}")
    row = page.locator('[role="row"]').filter(
        has=page.locator(f'a[href$="/models/{quote(model)}/versions/{version}"]')
    )
    row.wait_for()
    tags = row.locator('[role="status"][title]')
    try:
        tags.first.wait_for(timeout=5_000)  # aliases render just after the row
    except PlaywrightTimeout:
        return []
    return [str(tags.nth(i).get_attribute("title")) for i in range(tags.count())]


def open_run_metrics(page: Page, ui: UiTargets, experiment_id: str, run_id: str) -> None:
    """Open a run's "Model metrics" tab in its experiment and wait for the loss chart."""
    page.goto(f"{ui.mlflow_url}/#/experiments/{experiment_id}/runs/{run_id}/model-metrics")
    page.get_by_text("train_loss", exact=True).first.wait_for()


# --- Serving service ------------------------------------------------------------------------


def _swagger_static_dir() -> Path | None:
    """Swagger UI 5's files as the swagger-ui-py wheel ships them, if it is installed."""
    spec = find_spec("swagger_ui")
    if spec is None or spec.origin is None:
        return None
    static = Path(spec.origin).parent / "static"
    return static if (static / "swagger-ui-bundle.js").exists() else None


def serve_swagger_offline(context: BrowserContext) -> bool:
    """Answer FastAPI's CDN requests for Swagger UI from local files; False when absent.

    Only the browser's view changes: the services keep their stock /docs page, which works
    for any user whose browser reaches the CDN.
    """
    static = _swagger_static_dir()
    if static is None:
        return False

    def fulfil(route: Route) -> None:
        name = route.request.url.removeprefix(SWAGGER_CDN).split("?")[0]
        path = static / name
        if path.is_file() and path.parent == static:
            route.fulfill(path=str(path))
        else:
            route.abort()

    context.route(f"{SWAGGER_CDN}**", fulfil)
    return True


def open_serving_docs(page: Page, ui: UiTargets) -> None:
    """Open the serving service's Swagger UI and wait until the predict route is listed."""
    page.goto(f"{ui.serving_url}/docs")
    page.get_by_text("/v1/predict", exact=True).first.wait_for()
