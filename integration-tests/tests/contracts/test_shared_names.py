"""The model name and the registry aliases mean the same thing in every subtree.

The training service registers versions of `MODEL_NAME` and gives them the staging alias;
`model_management` moves the production alias from staging's version; the serving service
loads `MODEL_NAME@MODEL_ALIAS`. Each subtree keeps its own copy (they never import each
other), so this test reads the three sources and holds their defaults equal: change one
alone and the promotion DAG would silently move an alias nobody serves.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
SERVING_CONFIG = ROOT / "ml-serving-service/src/serving_service/config.py"
TRAINING_CONFIG = ROOT / "ml-training-service/src/training_service/config.py"
TRAINING_REGISTRY = ROOT / "ml-training-service/src/training_service/registry.py"
MODEL_MANAGEMENT = ROOT / "airflow-orchestrator/dags/model_management.py"
STAGING_ASSET = ROOT / "airflow-orchestrator/dags/orchestration/assets.py"


def settings_defaults(path: Path) -> dict[str, object]:
    """`field: type = default` lines of the `Settings` class."""
    tree = ast.parse(path.read_text())
    settings = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Settings")
    return {
        node.target.id: ast.literal_eval(node.value)
        for node in settings.body
        if isinstance(node, ast.AnnAssign)
        and isinstance(node.target, ast.Name)
        and isinstance(node.value, ast.Constant)
    }


def module_constant(path: Path, name: str) -> object:
    tree = ast.parse(path.read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == name for t in node.targets
        ):
            return ast.literal_eval(node.value)
    raise AssertionError(f"{name} not found in {path.relative_to(ROOT)}")


def dag_param_defaults(path: Path) -> dict[str, object]:
    """The defaults of the @dag function's arguments (the values a run gets)."""
    tree = ast.parse(path.read_text())
    function = next(n for n in tree.body if isinstance(n, ast.FunctionDef))
    named = function.args.args[len(function.args.args) - len(function.args.defaults) :]
    return {
        arg.arg: ast.literal_eval(value)
        for arg, value in zip(named, function.args.defaults, strict=True)
    }


def test_model_name_is_the_same_everywhere() -> None:
    serving = settings_defaults(SERVING_CONFIG)["model_name"]
    training = settings_defaults(TRAINING_CONFIG)["model_name"]
    orchestrator = dag_param_defaults(MODEL_MANAGEMENT)["model_name"]
    assert serving == training == orchestrator == "image-classifier"


def test_the_alias_serving_loads_is_the_one_model_management_moves() -> None:
    serving_alias = settings_defaults(SERVING_CONFIG)["model_alias"]
    assert dag_param_defaults(MODEL_MANAGEMENT)["production_alias"] == serving_alias


def test_the_alias_training_sets_is_the_one_model_management_promotes() -> None:
    training_alias = module_constant(TRAINING_REGISTRY, "STAGING_ALIAS")
    assert dag_param_defaults(MODEL_MANAGEMENT)["staging_alias"] == training_alias
    serving_alias = settings_defaults(SERVING_CONFIG)["model_alias"]
    assert training_alias != serving_alias, "training must never move the served alias"


def test_the_staging_asset_names_the_model_and_alias_training_registers() -> None:
    assert (
        module_constant(STAGING_ASSET, "MODEL_NAME")
        == settings_defaults(TRAINING_CONFIG)["model_name"]
    )
    assert module_constant(STAGING_ASSET, "STAGING_ALIAS") == module_constant(
        TRAINING_REGISTRY, "STAGING_ALIAS"
    )
