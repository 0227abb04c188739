"""The container stack as users see it: the shared browser smoke test (tests/ui_checks.py).

Same checks as the embedded suite, through the ports the containers publish on 127.0.0.1
(random, so neither Airflow's [api] base_url nor MLflow's --allowed-hosts may assume one):
Airflow lists the four DAGs and shows the `promoted` pipeline run as a success, MLflow's
model page shows `production` on the version it produced. This file runs after
test_container_stack.py, so the MLflow it reads is the recreated container.
"""

from __future__ import annotations

from typing import Any

import pytest
from container_stack import ContainerStack
from ui_checks import BrowserUiChecks, UiOutcome

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
    )


@pytest.fixture(scope="module")
def outcome(promoted: dict[str, Any]) -> UiOutcome:
    return UiOutcome(promoted["pipeline_run_id"], promoted["version"])


class TestBrowserUi(BrowserUiChecks):
    """Headless Chromium against the containers' published ports."""
