"""`make screenshots`: capture the README's pictures from a running stack after `make demo`.

Finds what to show through the REST APIs (the latest successful pipeline run, the version
that carries `production` and the MLflow run behind it), then opens each page in headless
Chromium and writes one PNG per page to docs/images/. URLs and credentials come from the
same environment variables as `python3 -m scripts.embedded` (StackConfig.from_env()).
"""

from __future__ import annotations

import argparse
import sys
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from playwright.sync_api import Page

from scripts.embedded.airflow_api import AirflowClient, AirflowError, request_json
from scripts.embedded.config import ROOT, StackConfig
from scripts.ui import pages
from scripts.ui.browser import chromium, chromium_missing_reason

OUT_DIR = ROOT / "docs" / "images"


class NothingToShow(RuntimeError):
    """The stack runs but has not produced what a picture needs; run `make demo` first."""


@dataclass(frozen=True)
class DemoResult:
    """What `make demo` left behind, as the pictures need it."""

    pipeline_run_id: str
    production_version: str
    experiment_id: str
    mlflow_run_id: str
    staging_asset_id: int


def find_demo_result(ui: pages.UiTargets) -> DemoResult:
    """Look up the latest successful pipeline run and the model version in production."""
    airflow = AirflowClient(ui.airflow_url, ui.airflow_user, ui.airflow_password)
    runs = airflow.api(
        "GET", f"/dags/{pages.PIPELINE}/dagRuns?state=success&order_by=-run_after&limit=1"
    )["dag_runs"]
    if not runs:
        raise NothingToShow(f"{pages.PIPELINE} has no successful run: run `make demo` first")
    mlflow = f"{ui.mlflow_url}/api/2.0/mlflow"
    name = urllib.parse.quote(pages.MODEL_NAME)
    try:
        version = request_json(
            "GET",
            f"{mlflow}/registered-models/alias?name={name}&alias=production",
            headers=ui.mlflow_headers(),
        )["model_version"]
    except AirflowError as exc:  # request_json's error type, whatever the server
        raise NothingToShow(
            f"no version of {pages.MODEL_NAME} carries 'production': {exc}"
        ) from exc
    run = request_json(
        "GET", f"{mlflow}/runs/get?run_id={version['run_id']}", headers=ui.mlflow_headers()
    )["run"]
    assets = airflow.api("GET", f"/assets?name_pattern={pages.STAGING_ASSET}")["assets"]
    if not assets:
        raise NothingToShow(f"no asset {pages.STAGING_ASSET}: run `make demo` first")
    return DemoResult(
        pipeline_run_id=runs[0]["dag_run_id"],
        production_version=str(version["version"]),
        experiment_id=str(run["info"]["experiment_id"]),
        mlflow_run_id=str(version["run_id"]),
        staging_asset_id=int(assets[0]["id"]),
    )


def shots(ui: pages.UiTargets, demo: DemoResult) -> dict[str, Callable[[Page], None]]:
    """File name -> how to bring its page on screen, in the order the README shows them."""

    def dag_list(page: Page) -> None:
        pages.listed_dag_ids(page, ui)

    def aliases(page: Page) -> None:
        found = pages.version_aliases(page, ui, demo.production_version)
        if "production" not in found:
            raise NothingToShow(f"Version {demo.production_version} shows aliases {found}")

    return {
        "airflow-dags.png": dag_list,
        "airflow-pipeline-grid.png": lambda page: pages.open_dag_grid(
            page, ui, pages.PIPELINE, demo.pipeline_run_id
        ),
        "airflow-staging-asset.png": lambda page: pages.open_asset(
            page, ui, demo.staging_asset_id, pages.STAGING_ASSET
        ),
        "mlflow-run-metrics.png": lambda page: pages.open_run_metrics(
            page, ui, demo.experiment_id, demo.mlflow_run_id
        ),
        "mlflow-model-aliases.png": aliases,
        "serving-docs.png": lambda page: pages.open_serving_docs(page, ui),
    }


def capture(ui: pages.UiTargets, out_dir: Path, timeout_ms: float) -> list[Path]:
    """Write every picture; the charts get a moment to finish their drawing animation."""
    demo = find_demo_result(ui)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    with chromium(timeout_ms) as context:
        if not pages.serve_swagger_offline(context):
            print("  (swagger-ui-py missing: serving-docs.png needs the CDN)", file=sys.stderr)
        pages.keep_mlflow_assistant_closed(context, ui)
        pages.log_in_to_mlflow(context, ui)
        page = context.new_page()
        pages.login_airflow(page, ui)
        for name, show in shots(ui, demo).items():
            show(page)
            page.wait_for_timeout(1_500)
            path = out_dir / name
            page.screenshot(path=str(path))
            written.append(path)
            print(f"  {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.ui", description=__doc__)
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="folder for the PNGs")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for each page")
    args = parser.parse_args(argv)
    reason = chromium_missing_reason()
    if reason:
        print(f"screenshots: {reason}", file=sys.stderr)
        return 2
    ui = pages.UiTargets.from_stack_config(StackConfig.from_env())
    print(f"> screenshots of {ui.airflow_url}, {ui.mlflow_url}, {ui.serving_url}")
    try:
        capture(ui, args.out, args.timeout * 1000)
    except (NothingToShow, AirflowError) as exc:
        print(f"screenshots: {exc}", file=sys.stderr)
        return 1
    return 0
