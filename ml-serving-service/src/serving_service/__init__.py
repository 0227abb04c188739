"""Serving service: low-latency predictions from an MLflow registry alias, hot-swapped.

`__version__` is the installed distribution's version (`importlib.metadata`), which pip
took from this subtree's pyproject.toml: `/version` and the OpenAPI document read it, so a
release changes one line.
"""

from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

SERVICE_NAME = "ml-serving-service"


def _source_tree_version() -> str:
    """pyproject.toml's version when this package runs from a source tree that was never
    installed (`PYTHONPATH=src` with requirements.txt alone)."""
    import tomllib

    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    try:
        with pyproject.open("rb") as file:
            return str(tomllib.load(file)["project"]["version"])
    except (OSError, KeyError) as error:
        raise ImportError(
            f"{SERVICE_NAME} is not installed and {pyproject} has no version: "
            "run `make setup` (pip install --no-deps -e .) or install the package"
        ) from error


try:
    __version__ = version(SERVICE_NAME)
except PackageNotFoundError:
    __version__ = _source_tree_version()
