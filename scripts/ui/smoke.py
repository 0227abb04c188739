"""The browser smoke checks of a running stack, embedded or in containers.

Each check opens the pages a user opens first and raises AssertionError saying what the
page showed instead: Airflow lists the four DAGs and shows the pipeline's run as a success;
MLflow's model page shows `production` on the version that run registered. They raise
instead of `assert`, so they also check under `python -O`.
"""

from __future__ import annotations

from playwright.sync_api import Page

from scripts.ui import pages


def check_airflow_shows_successful_pipeline_run(
    page: Page, ui: pages.UiTargets, pipeline_run_id: str
) -> None:
    pages.login_airflow(page, ui)
    listed = pages.listed_dag_ids(page, ui)
    missing = set(pages.DAG_IDS) - listed
    if missing:
        raise AssertionError(f"DAG list lacks {sorted(missing)}; it shows {sorted(listed)}")
    state = pages.run_state(page, ui, pages.PIPELINE, pipeline_run_id)
    if state != "success":
        raise AssertionError(f"{pages.PIPELINE} run {pipeline_run_id} shows {state!r}")


def check_mlflow_shows_production_alias(page: Page, ui: pages.UiTargets, version: str) -> None:
    aliases = pages.version_aliases(page, ui, version)
    if "production" not in aliases:
        raise AssertionError(f"Version {version} shows aliases {aliases}")
