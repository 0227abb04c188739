"""Each DAG states a param's default twice: in `params=` and in the @dag function's signature.

Airflow needs both (a scheduled DAG must have a default for every param when it is built,
and the decorator then sets each param from the signature), and the signature's value is the
one a run gets. This test holds the two equal, so editing one of them alone fails here
instead of silently doing nothing.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

DAGS = Path(__file__).resolve().parents[1] / "dags"


def declared_defaults(tree: ast.Module) -> dict[str, object]:
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == "params":
            assert isinstance(node.value, ast.Dict)
            defaults = {}
            for key, value in zip(node.value.keys, node.value.values, strict=True):
                assert isinstance(key, ast.Constant) and isinstance(value, ast.Call)
                defaults[str(key.value)] = ast.literal_eval(value.args[0])
            return defaults
    raise AssertionError("no params= in the file")


def signature_defaults(tree: ast.Module) -> dict[str, object]:
    function = next(
        (
            node
            for node in tree.body
            if isinstance(node, ast.FunctionDef)
            and any(
                isinstance(d, ast.Call) and getattr(d.func, "id", None) == "dag"
                for d in node.decorator_list
            )
        ),
        None,
    )
    if function is None:
        return {}
    args = function.args.args
    defaults = function.args.defaults
    named = args[len(args) - len(defaults) :]
    return {arg.arg: ast.literal_eval(value) for arg, value in zip(named, defaults, strict=True)}


# DAGs whose function takes its params as arguments (hello_world reads them from the context).
DAG_FILES = sorted(p for p in DAGS.glob("*.py") if signature_defaults(ast.parse(p.read_text())))


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.name)
def test_params_and_signature_declare_the_same_defaults(path: Path) -> None:
    tree = ast.parse(path.read_text())
    assert declared_defaults(tree) == signature_defaults(tree)
