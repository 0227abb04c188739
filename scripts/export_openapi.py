"""Export each service's OpenAPI document, and vendor it into the orchestrator's contracts.

For ml-training-service and ml-serving-service this imports the app factory
(``<package>.app.create_app``) in the service's own venv, calls ``app.openapi()`` and writes it
as sorted, 2-space indented JSON with a final newline to

* ``<service>/openapi.json``: the provider's committed contract;
* ``airflow-orchestrator/contracts/<service>.openapi.json``: the consumer's vendored copy (the
  orchestrator's contract tests read only files inside their own subtree).

The output is deterministic: the factory runs in a clean environment (only PATH, HOME,
``ENVIRONMENT=local`` and ``PYTHONPATH=src``), so a developer's API_TOKEN, MODEL_NAME or other
settings never leak into the document. No server starts and no network is used.

usage: python3 scripts/export_openapi.py [--check] [--vendored-only] [--venvs DIR]
  --check          write nothing; exit 1 if any file is missing or differs from a fresh export
  --vendored-only  only the orchestrator's copies (leave the service folders untouched)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ORCHESTRATOR_CONTRACTS = ROOT / "airflow-orchestrator" / "contracts"
# service folder -> Python package whose ``app.create_app`` builds the FastAPI app
SERVICES = {
    "ml-training-service": "training_service",
    "ml-serving-service": "serving_service",
}
# Run inside the service's venv: print the document, nothing else, on stdout.
DUMP = (
    "import json, sys\n"
    "from {package}.app import create_app\n"
    "sys.stdout.write(json.dumps(create_app().openapi(), indent=2, sort_keys=True) + '\\n')\n"
)


def export_document(service: str, package: str, venvs: Path) -> str:
    """The service's OpenAPI document as deterministic JSON text."""
    python = venvs / service / "bin" / "python"
    if not python.exists():
        raise SystemExit(f"{python} not found: run `make setup` (or pass --venvs)")
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(Path.home()),
        "ENVIRONMENT": "local",  # no API_TOKEN needed just to build the app
        "PYTHONPATH": "src",
        "PYTHONHASHSEED": "0",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    # The service venv's own python and a fixed program naming a package from SERVICES.
    done = subprocess.run(  # noqa: S603
        [str(python), "-c", DUMP.format(package=package)],
        cwd=ROOT / service,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"exporting {service} failed:\n{done.stderr[-3000:]}")
    return done.stdout


def targets(service: str, *, vendored_only: bool = False) -> list[Path]:
    vendored = ORCHESTRATOR_CONTRACTS / f"{service}.openapi.json"
    return [vendored] if vendored_only else [ROOT / service / "openapi.json", vendored]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare only, write nothing")
    parser.add_argument(
        "--vendored-only", action="store_true", help="only airflow-orchestrator/contracts/"
    )
    parser.add_argument("--venvs", type=Path, default=ROOT / ".venvs", help="one venv per service")
    args = parser.parse_args(argv)
    stale = []
    for service, package in SERVICES.items():
        document = export_document(service, package, args.venvs)
        for path in targets(service, vendored_only=args.vendored_only):
            current = path.read_text() if path.exists() else None
            if current == document:
                print(f"up to date: {path.relative_to(ROOT)}")
            elif args.check:
                stale.append(path)
                print(f"STALE: {path.relative_to(ROOT)}")
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(document)
                print(f"wrote: {path.relative_to(ROOT)}")
    if stale:
        print("run `python3 scripts/export_openapi.py` and commit the files", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
