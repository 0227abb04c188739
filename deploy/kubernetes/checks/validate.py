"""Validate rendered Kubernetes objects against pinned schemas, offline and strict.

Kubernetes' own kinds are checked with kubernetes-validate's bundled schemas of
KUBERNETES_VERSION in strict mode (an unknown field is an error, as `kubectl apply
--validate=strict` would say). Custom resources are checked against the CRD schemas vendored
in checks/schemas/ (see SOURCE.md there), made strict the way the API server treats a
structural schema: an object that lists its properties and does not say
`x-kubernetes-preserve-unknown-fields` takes no other field. A kind with no schema anywhere
is an error, not kubernetes-validate's warning: nothing passes unchecked.

    .venvs/k8s/bin/python deploy/kubernetes/checks/validate.py build/k8s/local.yaml ...
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from kubernetes_validate import utils

KUBERNETES_VERSION = "1.32"
SCHEMAS = Path(__file__).resolve().parent / "schemas"
# (apiVersion, kind) -> (vendored schema file, where it comes from)
CUSTOM_RESOURCES = {
    ("ray.io/v1", "RayCluster"): ("ray.io_v1_raycluster.json", "KubeRay v1.7.0"),
}


def strict(schema: Any) -> Any:
    """The schema with `additionalProperties: false` wherever the API server would prune."""
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    result = {key: strict(value) for key, value in schema.items()}
    if (
        "properties" in result
        and "additionalProperties" not in result
        and not result.get("x-kubernetes-preserve-unknown-fields")
    ):
        result["additionalProperties"] = False
    return result


def custom_resource_errors(resource: dict[str, Any], schema_file: str) -> list[str]:
    schema = strict(json.loads((SCHEMAS / schema_file).read_text()))
    validator = jsonschema.Draft7Validator(schema)
    return [
        f"{'.'.join(str(p) for p in error.absolute_path) or '<root>'}: {error.message}"
        for error in sorted(validator.iter_errors(resource), key=lambda e: list(e.path))
    ]


def errors_of(resource: dict[str, Any]) -> tuple[str, list[str]]:
    """(what it was checked against, problems) for one object."""
    key = (resource.get("apiVersion", ""), resource.get("kind", ""))
    if key in CUSTOM_RESOURCES:
        schema_file, source = CUSTOM_RESOURCES[key]
        return source, custom_resource_errors(resource, schema_file)
    against = f"Kubernetes {KUBERNETES_VERSION}"
    try:
        utils.validate(resource, KUBERNETES_VERSION, strict=True)
    except utils.ValidationError as error:
        path = ".".join(str(p) for p in error.path) or "<root>"
        return against, [f"{path}: {error.message}"]
    except utils.SchemaNotFoundError as error:
        return against, [
            f"{error.message}: a custom resource needs its CRD schema vendored in "
            "deploy/kubernetes/checks/schemas/ and listed in CUSTOM_RESOURCES"
        ]
    return against, []


def main(paths: list[str]) -> int:
    if not paths:
        print("usage: validate.py RENDERED.yaml ...", file=sys.stderr)
        return 2
    failures = 0
    for path in paths:
        resources = [r for r in yaml.safe_load_all(Path(path).read_text()) if r]
        checked: Counter[str] = Counter()
        for resource in resources:
            against, problems = errors_of(resource)
            checked[against] += 1
            name = f"{resource.get('kind')}/{resource.get('metadata', {}).get('name')}"
            for problem in problems:
                failures += 1
                print(f"ERROR {path}: {name} (against {against}): {problem}")
        summary = ", ".join(f"{count} against {what}" for what, count in sorted(checked.items()))
        print(f"k8s-validate: {path}: {len(resources)} objects, strict: {summary}")
    if failures:
        print(f"k8s-validate: {failures} problem(s)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
