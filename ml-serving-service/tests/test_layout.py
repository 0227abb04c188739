"""Rules of the source layout that a review would otherwise have to remember.

Every module has a docstring and stays under 300 lines, and the request path reads straight
down: fastpath -> scoring -> batching -> model -> graph -> kernels, no module importing one
above it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "serving_service"
MODULES = sorted([*PACKAGE.rglob("*.py"), *(ROOT / "benchmarks").glob("*.py")])
REQUEST_PATH = ("fastpath", "scoring", "batching", "model", "graph", "kernels")


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_module_has_a_docstring_and_at_most_300_lines(path: Path) -> None:
    text = path.read_text()
    assert ast.get_docstring(ast.parse(text)), f"{path.name} has no module docstring"
    assert len(text.splitlines()) <= 300, f"{path.name}: split it by responsibility"


def _imported(module: str) -> set[str]:
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    names = {
        node.module.removeprefix("serving_service.")
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module
    }
    return names & set(REQUEST_PATH)


@pytest.mark.parametrize("depth", range(len(REQUEST_PATH)))
def test_the_request_path_only_imports_downwards(depth: int) -> None:
    module = REQUEST_PATH[depth]
    upwards = _imported(module) & set(REQUEST_PATH[: depth + 1])
    assert not upwards, f"{module} imports {sorted(upwards)}, which sit above it"
