"""Render a kustomize overlay of deploy/kubernetes offline, with placeholder secrets.

The local overlay's Secret comes from its git-ignored `secrets.env` (`make k8s-secrets`, a
copy of `.env`). To render the same files on a machine without it (CI), and without ever
printing a real secret, this copies deploy/kubernetes/ into a temporary folder, writes a
`secrets.env` there whose keys are those of `.env.example` (empty values become
`placeholder-<key>`), and runs `kubectl kustomize` on the copy with kustomize's default
load restrictions (what `kubectl apply -k` uses).

    python3 deploy/kubernetes/checks/render.py local              # YAML on stdout
    python3 deploy/kubernetes/checks/render.py local production --out build/k8s

Standard library only: `make k8s-check` and the contract test
(integration-tests/tests/contracts/test_kubernetes_manifests.py) both call it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
KUSTOMIZE_ROOT = ROOT / "deploy/kubernetes"
OVERLAYS = ("local", "production")
# The local overlay's Secret source, written by `make k8s-secrets` (git-ignored).
SECRETS_ENV = "overlays/local/secrets.env"
KUBECTL = os.environ.get("KUBECTL", "kubectl")


def placeholder_env(example: Path) -> str:
    """`.env.example` with every empty value filled by a recognisable placeholder."""
    lines = []
    for line in example.read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#") or "=" not in stripped:
            continue
        key, value = stripped.split("=", 1)
        lines.append(f"{key}={value or 'placeholder-' + key.lower().replace('_', '-')}")
    return "\n".join(lines) + "\n"


def render(overlay: str) -> str:
    """The overlay's objects as one multi-document YAML string."""
    if overlay not in OVERLAYS:
        raise SystemExit(f"unknown overlay {overlay!r}: choose one of {', '.join(OVERLAYS)}")
    if shutil.which(KUBECTL) is None:
        raise SystemExit(
            f"{KUBECTL} not found: install kubectl 1.32 (it carries kustomize), or set KUBECTL"
        )
    with tempfile.TemporaryDirectory(prefix="k8s-render-") as tmp:
        copy = Path(tmp)
        shutil.copytree(
            KUSTOMIZE_ROOT,
            copy / "deploy/kubernetes",
            ignore=shutil.ignore_patterns("checks", "secrets.env"),
        )
        (copy / "deploy/kubernetes" / SECRETS_ENV).write_text(
            placeholder_env(ROOT / ".env.example")
        )
        done = subprocess.run(  # noqa: S603 - kubectl with arguments of our own
            [KUBECTL, "kustomize", str(copy / "deploy/kubernetes/overlays" / overlay)],
            capture_output=True,
            text=True,
            check=False,
        )
    if done.returncode != 0:
        raise SystemExit(f"kubectl kustomize overlays/{overlay} failed:\n{done.stderr}")
    return done.stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("overlays", nargs="+", choices=OVERLAYS)
    parser.add_argument("--out", type=Path, help="write <overlay>.yaml files into this folder")
    args = parser.parse_args()
    for overlay in args.overlays:
        text = render(overlay)
        if args.out:
            args.out.mkdir(parents=True, exist_ok=True)
            target = args.out / f"{overlay}.yaml"
            target.write_text(text)
            print(f"k8s: rendered overlays/{overlay} -> {target}", file=sys.stderr)
        else:
            sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
