"""The Kubernetes manifests (deploy/kubernetes) mirror docker-compose.yml (issue #19).

docker-compose.yml is the one description of the stack; the kustomize overlays are held to
it here so the two cannot drift. For every compose service with a Kubernetes counterpart
(COMPOSE_TO_K8S, an explicit list; a compose service in neither list fails the test):

- image: the same repository as compose's default, with the tag `make images` builds
  (scripts/build_images.sh: <prefix>/<name>:<version>);
- ports: every `service:port` compose and the proxy use to reach it is a port of the
  Kubernetes Service of that name and a container port of the workload;
- environment: the same variable names, except those listed with their reason;
- probes: liveness asks what the image's HEALTHCHECK (which compose runs) asks, readiness
  of training and serving asks /ready, and the startup budget covers compose's start_period.

The overlays are rendered by deploy/kubernetes/checks/render.py (kubectl kustomize, with
placeholder secrets), as `make k8s-check` does.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
COMPOSE = ROOT / "docker-compose.yml"
RENDER = ROOT / "deploy/kubernetes/checks/render.py"
BUILD_IMAGES = ROOT / "scripts/build_images.sh"
WRITE_ENV = ROOT / "scripts/write_env.sh"

# compose service -> (kind, object name, container name) in the rendered local overlay.
COMPOSE_TO_K8S: dict[str, tuple[str, str, str]] = {
    "postgres": ("StatefulSet", "postgres", "postgres"),
    "redis": ("StatefulSet", "redis", "redis"),
    "objectstore": ("StatefulSet", "objectstore", "objectstore"),
    "mlflow": ("Deployment", "mlflow", "mlflow"),
    "mlflow-2": ("Deployment", "mlflow", "mlflow"),
    "training": ("Deployment", "training", "training"),
    "training-2": ("Deployment", "training", "training"),
    "serving": ("Deployment", "serving", "serving"),
    "serving-2": ("Deployment", "serving", "serving"),
    "airflow-init": ("Job", "airflow-init", "airflow"),
    "airflow": ("Deployment", "airflow", "airflow"),
    "airflow-scheduler": ("Deployment", "airflow-scheduler", "airflow"),
    "airflow-dag-processor": ("Deployment", "airflow-dag-processor", "airflow"),
    "airflow-triggerer": ("Deployment", "airflow-triggerer", "airflow"),
    "airflow-worker": ("Deployment", "airflow-worker", "airflow"),
    "airflow-worker-2": ("Deployment", "airflow-worker", "airflow"),
    "ray-head": ("RayCluster", "ray", "ray-head"),
    "ray-worker": ("RayCluster", "ray", "ray-worker"),
    "ray-worker-2": ("RayCluster", "ray", "ray-worker"),
}
# compose services with no counterpart, and why.
NO_COUNTERPART = {
    "proxy": "TLS for published ports; in the cluster: kubectl port-forward or an Ingress",
    "lb": "a Kubernetes Service balances the replicas of its Deployment",
    "prometheus": "the cluster's own Prometheus scrapes the annotated pods",
    "grafana": "the cluster's own Grafana; the dashboard ships as a ConfigMap",
    "proxy-monitoring": "TLS for Prometheus and Grafana, the cluster's own business",
}
# Names only Kubernetes sets, and why.
K8S_ONLY_ENV = {
    # Inputs that $(NAME) composes into other values, as compose's ${NAME} does from .env.
    **dict.fromkeys(
        [
            "POSTGRES_USER",
            "POSTGRES_PASSWORD",
            "POSTGRES_HOST",
            "REDIS_PASSWORD",
            "REDIS_HOST",
            "ORCHESTRATOR_TOKEN",
            "CLIENT_TOKEN",
            "MLFLOW_ORCHESTRATOR_PASSWORD",
            "AIRFLOW_ADMIN_USER",
            "TRAINING_DATABASE_PASSWORD",
        ],
        "composed into other variables with $(NAME)",
    ),
    "POD_IP": "ALLOWED_HOSTS admit the pod's address (kubelet probes, Prometheus)",
    "AIRFLOW_CONFIG": "the root filesystem is read-only: airflow.cfg goes to /tmp",
    "PGDATA": "a subfolder of the volume, which initdb must own",
}
# Names of the scale contract (/work/briefs/scale_contract.md) Kubernetes sets before compose
# does: allowed only while no compose service sets them.
SCALE_ENV = {
    "TRAINING_EXECUTOR",
    "RAY_ADDRESS",
    "DATABASE_URL",
    "STATE_URL",
    "MLFLOW_S3_ENDPOINT_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AIRFLOW__CELERY__BROKER_URL",
    "AIRFLOW__CELERY__RESULT_BACKEND",
    "OBJECT_STORE_ACCESS_KEY",
    "OBJECT_STORE_SECRET_KEY",
}
# Names only compose sets, and why.
COMPOSE_ONLY_ENV = {
    "SSL_CERT_FILE": "TLS to compose's proxy; in the cluster pods talk HTTP on the pod "
    "network, restricted by NetworkPolicies (deploy/kubernetes/README.md)",
    "MLFLOW_TRACKING_SERVER_CERT_PATH": "same: the CA of compose's TLS proxy",
}
# compose sets these on airflow-init; Kubernetes writes the passwords file in the api-server
# pod's init container instead (no volume shared between a Job and a Deployment).
MOVED_ENV = {
    ("airflow-init", name): ("Deployment", "airflow", "write-passwords")
    for name in ("AIRFLOW_ADMIN_PASSWORD", "AIRFLOW_OPERATOR_PASSWORD", "AIRFLOW_VIEWER_PASSWORD")
}
READINESS = {
    "training": "/ready",
    "training-2": "/ready",
    "serving": "/ready",
    "serving-2": "/ready",
}
# Kubernetes runs the scale profile's image where compose's default is the single-node one:
# the training replicas are Ray nodes there (TRAINING_IMAGE, which `make env SCALE=1` writes).
SCALE_IMAGES = {
    "training": "mlops/ml-training-service-ray",
    "training-2": "mlops/ml-training-service-ray",
}
HOST_PORT = re.compile(r"(?<![\w.-])([a-z][a-z0-9-]*):(\d{2,5})\b")


@cache
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())["services"]


@cache
def rendered(overlay: str) -> tuple[dict[str, Any], ...]:
    done = subprocess.run(  # noqa: S603 - our own script, fixed arguments
        [sys.executable, str(RENDER), overlay], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, f"render.py {overlay} failed:\n{done.stderr}"
    return tuple(d for d in yaml.safe_load_all(done.stdout) if d)


def find(overlay: str, kind: str, name: str) -> dict[str, Any]:
    for obj in rendered(overlay):
        if obj["kind"] == kind and obj["metadata"]["name"] == name:
            return obj
    raise AssertionError(f"overlays/{overlay} renders no {kind}/{name}")


def pod_specs(obj: dict[str, Any]) -> list[dict[str, Any]]:
    if obj["kind"] == "RayCluster":
        groups = [obj["spec"]["headGroupSpec"], *obj["spec"]["workerGroupSpecs"]]
        return [g["template"]["spec"] for g in groups]
    return [obj["spec"]["template"]["spec"]]


def container(kind: str, name: str, wanted: str, overlay: str = "local") -> dict[str, Any]:
    for spec in pod_specs(find(overlay, kind, name)):
        for c in spec.get("containers", []) + spec.get("initContainers", []):
            if c["name"] == wanted:
                return c
    raise AssertionError(f"{kind}/{name} has no container {wanted!r}")


def mapped() -> list[str]:
    return [s for s in compose() if s in COMPOSE_TO_K8S]


def compose_env(service: str) -> dict[str, str]:
    env = compose()[service].get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def default_image(service: str) -> str:
    """`${X_IMAGE:-mlops/name:latest}` -> mlops/name (the scale profile's, SCALE_IMAGES)."""
    if service in SCALE_IMAGES:
        return SCALE_IMAGES[service]
    image = compose()[service]["image"]
    match = re.fullmatch(r"\$\{\w+:-([^}]+)\}", image)
    return (match.group(1) if match else image).rsplit(":", 1)[0]


@cache
def built_tags() -> dict[str, str]:
    """<prefix>/<name> -> version, as scripts/build_images.sh writes build/images.env."""
    tags = {}
    lines = re.findall(
        r'^\s*echo "\w+_IMAGE=\$PREFIX/([\w.-]+):(.*)"$', BUILD_IMAGES.read_text(), re.M
    )
    for name, version in lines:
        pinned = re.fullmatch(r'\$\(pinned_version "\$ROOT/([^"]+)" ([\w-]+)\)', version)
        project = re.fullmatch(r'\$\(pyproject_version "\$ROOT/([^"]+)"\)', version)
        if pinned:
            pins = (ROOT / pinned.group(1)).read_text().splitlines()
            version = next(p.split("==")[1] for p in pins if p.startswith(pinned[2] + "=="))
        elif project:
            version = tomllib.loads((ROOT / project.group(1)).read_text())["project"]["version"]
        tags[f"mlops/{name}"] = version
    return tags


def healthcheck(service: str) -> str:
    """The healthcheck compose runs: its own `test`, else the image's HEALTHCHECK."""
    check = compose()[service].get("healthcheck") or {}
    if "test" in check:
        test = check["test"]
        return " ".join(test) if isinstance(test, list) else test
    image = compose()[service]["image"]
    same_image = [
        s["build"] for s in compose().values() if s.get("image") == image and "build" in s
    ]
    build = compose()[service].get("build") or next(iter(same_image), None)
    assert build, f"compose service {service} has neither a healthcheck test nor a build"
    dockerfile = (ROOT / build / "Dockerfile").read_text().replace("\\\n", " ")
    match = re.search(r"^HEALTHCHECK .*?CMD (.*)$", dockerfile, re.MULTILINE)
    assert match, f"{build}/Dockerfile has no HEALTHCHECK"
    command = match.group(1)
    branches = dict(re.findall(r"\*\"?([\w -]*?)\"?\*?\)(.*?);;", command))
    if branches:  # one image, several components: the branch of this service's command
        args = " ".join(compose()[service].get("command") or [])
        # `*)`, the key "", is the branch of every other command.
        return next(cmd for key, cmd in branches.items() if key in args)
    return command


def references(node: object, field: str) -> list[dict[str, Any]]:
    """Every `field:` mapping anywhere under node (secretKeyRef, configMapKeyRef, ...)."""
    if isinstance(node, dict):
        found = [node[field]] if isinstance(node.get(field), dict) else []
        return found + [r for value in node.values() for r in references(value, field)]
    if isinstance(node, list):
        return [r for item in node for r in references(item, field)]
    return []


def normalized(command: str) -> str:
    """A shell command with its spacing collapsed and a trailing `|| exit 1` dropped."""
    return " ".join(command.split()).removesuffix(" || exit 1")


def seconds(value: str) -> int:
    match = re.fullmatch(r"(?:(\d+)m)?(?:(\d+)s)?", value)
    assert match, value
    return int(match.group(1) or 0) * 60 + int(match.group(2) or 0)


def test_every_compose_service_is_mapped_or_excused() -> None:
    unknown = [s for s in compose() if s not in COMPOSE_TO_K8S and s not in NO_COUNTERPART]
    assert not unknown, (
        f"compose services {unknown} have no Kubernetes counterpart: add them to "
        "deploy/kubernetes and to COMPOSE_TO_K8S, or to NO_COUNTERPART with the reason"
    )


@pytest.mark.parametrize("service", mapped())
def test_image_is_compose_repository_with_the_built_tag(service: str) -> None:
    kind, name, wanted = COMPOSE_TO_K8S[service]
    image = container(kind, name, wanted)["image"]
    repository, _, tag = image.rpartition(":")
    assert repository == default_image(service), f"{service}: {image} vs compose's image"
    assert tag == built_tags().get(repository), (
        f"{kind}/{name}: tag {tag!r}, but `make images` builds {repository}:"
        f"{built_tags().get(repository)}: update `images:` in deploy/kubernetes kustomizations"
    )


@pytest.mark.parametrize("service", mapped())
def test_ports_compose_uses_are_served(service: str) -> None:
    kind, name, wanted = COMPOSE_TO_K8S[service]
    configs = [*(ROOT / "infra").glob("*/*.conf"), *(ROOT / "infra").glob("*/*.cfg")]
    sources = [v for s in compose() for v in compose_env(s).values()]
    sources += [p.read_text() for p in configs]
    ports = {int(p) for text in sources for host, p in HOST_PORT.findall(text) if host == service}
    published = compose()[service].get("ports") or []
    ports |= {int(str(p).rsplit(":", 1)[-1]) for p in published}
    c = container(kind, name, wanted)
    served = {p["containerPort"] for p in c.get("ports", [])}
    assert ports <= served, f"{kind}/{name} container {wanted} lacks ports {ports - served}"
    if kind != "RayCluster" and ports:
        svc = find("local", "Service", service.removesuffix("-2"))
        assert ports <= {p["port"] for p in svc["spec"]["ports"]}, f"Service {service} ports"


@pytest.mark.parametrize("service", mapped())
def test_environment_names_match(service: str) -> None:
    kind, name, wanted = COMPOSE_TO_K8S[service]
    ours = {e["name"] for e in container(kind, name, wanted).get("env", [])}
    theirs = set(compose_env(service))
    in_compose_anywhere = {n for s in compose() for n in compose_env(s)}
    missing = set()
    for env in theirs - ours - set(COMPOSE_ONLY_ENV):
        if (service, env) in MOVED_ENV:
            moved = container(*MOVED_ENV[service, env])
            assert env in {e["name"] for e in moved.get("env", [])}, f"{env} not moved"
        else:
            missing.add(env)
    extra = ours - theirs - set(K8S_ONLY_ENV) - (SCALE_ENV - in_compose_anywhere)
    assert not missing, f"{kind}/{name} ({wanted}) lacks compose's {sorted(missing)}"
    assert not extra, f"{kind}/{name} ({wanted}) sets {sorted(extra)}, which compose does not"


@pytest.mark.parametrize("service", mapped())
def test_probes_ask_what_compose_asks(service: str) -> None:
    kind, name, wanted = COMPOSE_TO_K8S[service]
    c = container(kind, name, wanted)
    if kind == "RayCluster":
        assert c.get("livenessProbe") and c.get("readinessProbe"), f"{wanted} lacks probes"
        return
    if (compose()[service].get("healthcheck") or {}).get("disable"):
        assert "livenessProbe" not in c, f"{kind}/{name}: compose runs no healthcheck here"
        return
    check = healthcheck(service)
    liveness = c["livenessProbe"]
    url = re.search(r"127\.0\.0\.1:(?:\d+|\{[^}]*\})(/[\w/.-]*)", check)
    if url:
        assert liveness.get("httpGet", {}).get("path") == url.group(1), (
            f"{kind}/{name}: liveness {liveness} does not ask {url.group(1)} ({check})"
        )
    elif check.strip() != "true":  # "true": the image checks nothing for this command
        words = normalized(" ".join(liveness.get("exec", {}).get("command", [])))
        assert normalized(check) in words, (
            f"{kind}/{name}: liveness {liveness} does not run the image's {check!r}"
        )
    if service in READINESS:
        assert c["readinessProbe"]["httpGet"]["path"] == READINESS[service]
    start = (compose()[service].get("healthcheck") or {}).get("start_period")
    if start:
        startup = c.get("startupProbe")
        assert startup, f"{kind}/{name}: no startupProbe for compose's start_period {start}"
        budget = startup.get("periodSeconds", 10) * startup.get("failureThreshold", 3)
        assert budget >= seconds(start), f"{kind}/{name}: startup {budget}s < {start}"


def test_the_scale_images_are_the_ones_make_env_scale_writes() -> None:
    written = re.findall(r'echo "TRAINING_IMAGE=([\w./-]+):[\w.-]+"', WRITE_ENV.read_text())
    assert written == [SCALE_IMAGES["training"]], f"write_env.sh SCALE=1 writes {written}"
    for service in SCALE_IMAGES:
        assert compose()[service]["image"].startswith("${TRAINING_IMAGE:-"), service


def test_production_runs_the_same_workloads_as_local() -> None:
    for service in mapped():
        kind, name, wanted = COMPOSE_TO_K8S[service]
        if kind == "StatefulSet":
            continue  # external in production
        local = container(kind, name, wanted, "local")
        production = container(kind, name, wanted, "production")
        for key in ("image", "ports", "livenessProbe", "readinessProbe"):
            assert local.get(key) == production.get(key), f"{name}: {key} differs"
        assert [e["name"] for e in local.get("env", [])] == [
            e["name"] for e in production.get("env", [])
        ]


def test_every_secret_key_the_manifests_read_is_a_key_of_env_example() -> None:
    keys = {
        line.split("=", 1)[0].lstrip("# ").strip()
        for line in (ROOT / ".env.example").read_text().splitlines()
        if "=" in line
    }
    read = {
        ref["key"]
        for overlay in ("local", "production")
        for obj in rendered(overlay)
        for ref in references(obj, "secretKeyRef")
    }
    assert read, "no secretKeyRef found: the search below is broken"
    assert read <= keys, f"Secret keys not in .env.example (make env): {sorted(read - keys)}"


def test_the_dashboard_configmap_is_the_dashboard_compose_serves() -> None:
    # kustomize reads only files under the kustomization, so base/ holds a copy of the
    # dashboard Grafana reads in compose: it must be that file, byte for byte.
    original = ROOT / "infra/grafana/dashboards/mlops-services.json"
    copy = ROOT / "deploy/kubernetes/base/dashboards/mlops-services.json"
    assert copy.read_bytes() == original.read_bytes(), (
        f"{copy.relative_to(ROOT)} differs from {original.relative_to(ROOT)}: copy it again"
    )
