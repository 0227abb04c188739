"""The notebooks in notebooks/ run top to bottom against the embedded stack, and stay stripped.

Each notebook runs in a fresh kernel (nbclient), pointed at a stack by the environment
variables it reads. By default that is the session's stack after its lifecycle run
(`promoted_run`: runs, versions and a `production` alias for 01 to read); with
NOTEBOOKS_STACK=running (`make notebooks`) it is the stack `make demo` left running, found the
way `python3 -m scripts.embedded` finds it (STACK_HOME, MLFLOW_PORT, ...).

The kernel is this interpreter, so the notebooks import what this venv pins: jupyter_client
resolves the `python3` kernelspec to ipykernel's, whose command `python` it replaces with
sys.executable. A test holds that, so a `python3` kernel registered elsewhere (JUPYTER_PATH,
~/.local/share/jupyter) cannot slip in; nothing is registered globally.
"""

from __future__ import annotations

import os
import re
import sys
import time
from pathlib import Path

import httpx
import nbformat
import pytest
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

from scripts.embedded.config import ROOT, StackConfig
from scripts.embedded.stack import Stack, logs_text

NOTEBOOKS = ROOT / "notebooks"
PATHS = sorted(NOTEBOOKS.glob("*.ipynb"))
KERNEL = "python3"
CELL_TIMEOUT = 600  # seconds per cell; 02 waits for its training job in one cell
# Read by the notebooks with a default; never inherited, so the stack under test decides.
NOTEBOOK_VARS = (
    "MLFLOW_TRACKING_URI",
    "MLFLOW_TRACKING_USERNAME",
    "MLFLOW_TRACKING_PASSWORD",
    "TRAINING_URL",
    "SERVING_URL",
    "STACK_HOME",
    "API_TOKEN",
)
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def running_stack() -> Stack:
    """The stack `make demo` left running; fails with what to do when it does not answer."""
    stack = Stack(StackConfig.from_env())
    for url in (stack.cfg.mlflow_url, stack.cfg.training_url, stack.cfg.serving_url):
        try:
            httpx.get(f"{url}/health", timeout=5).raise_for_status()
        except httpx.HTTPError as exc:
            pytest.fail(f"nothing healthy at {url} ({exc}): run `make demo` first", pytrace=False)
    return stack


@pytest.fixture(scope="module")
def notebook_stack(request: pytest.FixtureRequest) -> Stack:
    """The stack the notebooks call: the session's after its lifecycle run, or a running one."""
    if os.environ.get("NOTEBOOKS_STACK") == "running":
        return running_stack()
    request.getfixturevalue("promoted_run")
    stack: Stack = request.getfixturevalue("stack")
    return stack


def kernel_env(cfg: StackConfig) -> dict[str, str]:
    """This process's environment, with the notebooks' variables set for the stack `cfg`."""
    env = {k: v for k, v in os.environ.items() if k not in NOTEBOOK_VARS}
    env.update(
        MLFLOW_TRACKING_URI=cfg.mlflow_url,
        # People read MLflow with the read-only login (the client reads these two).
        MLFLOW_TRACKING_USERNAME="viewer",
        MLFLOW_TRACKING_PASSWORD=cfg.mlflow_password("viewer"),
        TRAINING_URL=cfg.training_url,
        SERVING_URL=cfg.serving_url,
        STACK_HOME=str(cfg.home),  # 02 reads the services' token from its secrets.json
    )
    return env


def execute(path: Path, env: dict[str, str]) -> None:
    """Run every cell in a fresh kernel started in notebooks/; outputs stay in memory."""
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(notebook, kernel_name=KERNEL, timeout=CELL_TIMEOUT)
    client.execute(env=env, cwd=str(NOTEBOOKS))


def test_the_kernel_is_this_interpreter() -> None:
    command = KernelManager(kernel_name=KERNEL).format_kernel_cmd()
    bin_dir = Path(os.path.abspath(sys.executable)).parent  # not resolve(): keep the venv
    assert Path(os.path.abspath(command[0])).parent == bin_dir, (
        f"kernel {KERNEL!r} runs {command}, not this venv's python ({sys.executable}): a "
        "kernelspec of that name on the Jupyter path (JUPYTER_PATH, ~/.local/share/jupyter) "
        "wins; remove it"
    )
    assert command[1:3] == ["-m", "ipykernel_launcher"], command


def test_committed_notebooks_have_no_outputs() -> None:
    assert len(PATHS) >= 2, f"notebooks missing from {NOTEBOOKS}"
    for path in PATHS:
        notebook = nbformat.read(path, as_version=4)
        nbformat.validate(notebook)
        dirty = [
            index
            for index, cell in enumerate(notebook.cells)
            if cell.cell_type == "code"
            and (cell.outputs or cell.execution_count is not None or "execution" in cell.metadata)
        ]
        assert not dirty, (
            f"{path.name}: code cells {dirty} carry outputs or execution counts; clear them "
            "before committing (Jupyter: Edit > Clear Outputs of All Cells)"
        )


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.name)
def test_notebook_runs_against_the_stack(
    path: Path, notebook_stack: Stack, request: pytest.FixtureRequest
) -> None:
    started = time.monotonic()
    try:
        execute(path, kernel_env(notebook_stack.cfg))
    except (CellExecutionError, CellTimeoutError, DeadKernelError) as exc:
        logs = logs_text(notebook_stack, 40)
        request.node.add_report_section("call", "embedded stack logs", logs)
        pytest.fail(f"{path.name} failed:\n{ANSI.sub('', str(exc))}", pytrace=False)
    print(f"{path.name}: {time.monotonic() - started:.1f} s")
