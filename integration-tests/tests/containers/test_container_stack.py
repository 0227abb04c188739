"""The full stack in containers, end to end, with its fault cases.

Images come from scripts/build_images.sh (the same build as `make images` and CI), the
stack from `ContainerStack`, which starts the services of docker-compose.yml as compose
describes them. Airflow's REST API runs
`mlflow_orchestration_pipeline` then `model_management`; the new version must carry
`production`, the serving container must answer with it (>= 0.9 accuracy on held-out
digits) and MLflow must hold the run with its artifacts. Every call goes through the TLS
proxy, checked against the session's CA; plain HTTP to it is refused, and the services' own
ports are not published. Then the faults: a new MLflow
container on the same volumes loses nothing, and a restarted serving container comes back
serving the production version (downloading it from that new MLflow container).

The tests share one promoted model (`promoted`, session scope, see conftest.py) and run in
file order; test_container_ui.py then checks the same run in the browser.
"""

from __future__ import annotations

import ssl
import subprocess
import time
import tomllib
import urllib.parse
from typing import Any

import compose_file
import docker
import httpx
import pytest
import tls
from container_stack import COMPOSE_FILE, ROOT, ContainerStack

from scripts.embedded.demo import MODEL_NAME

GB = 1000**3
# The README's size targets for the images, by their compose variable.
SIZE_LIMITS = {"TRAINING_IMAGE": 1.5 * GB, "SERVING_IMAGE": 1.5 * GB, "AIRFLOW_IMAGE": 1.0 * GB}
# Each image of a subtree, by its compose variable: subtree and the distribution it installs.
SUBTREE_IMAGES = {
    "TRAINING_IMAGE": ("ml-training-service", "ml-training-service"),
    "SERVING_IMAGE": ("ml-serving-service", "ml-serving-service"),
    "AIRFLOW_IMAGE": ("airflow-orchestrator", None),
}


def get_json(http: httpx.Client, url: str, **params: Any) -> Any:
    answer = http.get(url, params=params or None)
    assert answer.status_code == 200, f"GET {url} -> {answer.status_code}: {answer.text[:500]}"
    return answer.json()


def aliases(http: httpx.Client, mlflow: str) -> dict[str, str]:
    model = get_json(http, f"{mlflow}/api/2.0/mlflow/registered-models/get", name=MODEL_NAME)
    return {a["alias"]: a["version"] for a in model["registered_model"].get("aliases", [])}


def artifact_paths(http: httpx.Client, mlflow: str, root: str) -> set[str]:
    """Every file under an artifact root, listed through the server's artifact proxy."""
    prefix = root.removeprefix("mlflow-artifacts:").lstrip("/")
    found: set[str] = set()
    pending = [prefix]
    while pending:
        path = pending.pop()
        listing = get_json(http, f"{mlflow}/api/2.0/mlflow-artifacts/artifacts", path=path)
        for entry in listing.get("files", []):
            full = f"{path}/{entry['path']}"
            if entry.get("is_dir"):
                pending.append(full)
            else:
                found.add(full.removeprefix(prefix).lstrip("/"))
    return found


def registry_snapshot(http: httpx.Client, mlflow: str) -> dict[str, Any]:
    """What must survive an MLflow restart: versions, aliases, runs and artifact listings."""
    versions = get_json(
        http, f"{mlflow}/api/2.0/mlflow/model-versions/search", filter=f"name='{MODEL_NAME}'"
    )["model_versions"]
    runs = {
        v["run_id"]: get_json(http, f"{mlflow}/api/2.0/mlflow/runs/get", run_id=v["run_id"])["run"]
        for v in versions
    }
    return {
        "versions": sorted((v["version"], v["run_id"], v.get("source")) for v in versions),
        "aliases": aliases(http, mlflow),
        "runs": {
            run_id: (run["info"]["status"], sorted(m["key"] for m in run["data"]["metrics"]))
            for run_id, run in runs.items()
        },
        "run_artifacts": {
            run_id: sorted(artifact_paths(http, mlflow, run["info"]["artifact_uri"]))
            for run_id, run in runs.items()
        },
    }


def served_model(
    http: httpx.Client, serving: str, version: str, timeout: float = 120
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    model: dict[str, Any] = {}
    while time.monotonic() < deadline:
        try:
            answer = http.get(f"{serving}/v1/model", timeout=10)
            model = answer.json() if answer.status_code == 200 else {"status": answer.status_code}
            if str(model.get("version")) == version:
                return model
        except httpx.HTTPError as exc:
            model = {"error": repr(exc)}
        time.sleep(1)
    raise AssertionError(f"serving never answered with v{version}; last: {model}")


def holdout(http: httpx.Client, training: str, dataset_id: str) -> dict[str, Any]:
    samples = get_json(
        http, f"{training}/v1/datasets/{dataset_id}/samples", split="test", limit=10_000
    )
    assert len(samples["instances"]) >= 300, "the held-out split should be the whole test set"
    return dict(samples)


def served_accuracy(
    http: httpx.Client, serving: str, samples: dict[str, Any], token: str
) -> tuple[float, dict[str, Any]]:
    # Compose never opens predict: a client calls with CLIENT_TOKEN (predict, feedback).
    answer = http.post(
        f"{serving}/v1/predict",
        json={"instances": samples["instances"]},
        headers={"Authorization": f"Bearer {token}"},
        timeout=120,
    )
    assert answer.status_code == 200, answer.text[:500]
    body = answer.json()
    hits = sum(p == t for p, t in zip(body["predictions"], samples["labels"], strict=True))
    return hits / len(samples["labels"]), body


def test_images_meet_size_targets(
    images: dict[str, str], docker_client: docker.DockerClient
) -> None:
    sizes = {key: docker_client.images.get(images[key]).attrs["Size"] for key in SIZE_LIMITS}
    too_big = {k: f"{v / GB:.2f} GB" for k, v in sizes.items() if v > SIZE_LIMITS[k]}
    assert not too_big, f"images over their size target: {too_big}"


def test_images_carry_their_pyproject_version_and_this_revision(
    images: dict[str, str], docker_client: docker.DockerClient
) -> None:
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    for key, (subtree, distribution) in SUBTREE_IMAGES.items():
        with (ROOT / subtree / "pyproject.toml").open("rb") as file:
            version = tomllib.load(file)["project"]["version"]
        image = docker_client.images.get(images[key])
        labels = image.labels
        assert images[key].endswith(f":{version}"), (images[key], version)
        assert labels.get("org.opencontainers.image.version") == version, (key, labels)
        assert labels.get("org.opencontainers.image.revision") == head, (key, labels)
        if distribution:  # what /version will say: the installed package's metadata
            installed = docker_client.containers.run(
                image,
                [
                    "python",
                    "-c",
                    f"import importlib.metadata as m; print(m.version({distribution!r}))",
                ],
                remove=True,
            )
            assert installed.decode().strip() == version, (key, installed)


def test_containers_are_healthy_non_root_and_loopback_only(
    container_stack: ContainerStack, docker_client: docker.DockerClient
) -> None:
    # Every port compose publishes, in every profile, is on the loopback interface; the
    # suite publishes on the address compose gives, so the bindings below come from it.
    every_service = compose_file.load(
        COMPOSE_FILE, container_stack.variables, profiles=("monitoring",)
    )
    exposed = [(s.name, p) for s in every_service for p in s.ports if p.host_ip != "127.0.0.1"]
    assert not exposed, f"docker-compose.yml publishes beyond 127.0.0.1: {exposed}"
    # Compose's healthchecks (on the images' HEALTHCHECK commands) go green.
    long_running = container_stack.long_running
    assert {"postgres", "mlflow", "training", "serving", "airflow-scheduler"} <= set(long_running)
    for name in long_running:
        container_stack.wait_healthy(name, timeout=180)
    for name in long_running:
        attrs = docker_client.containers.get(
            container_stack.containers[name].get_container_id()
        ).attrs
        assert attrs["Config"]["User"] not in ("", "0", "root"), f"{name} runs as root"
        for bindings in (attrs["NetworkSettings"]["Ports"] or {}).values():
            for binding in bindings or []:
                assert binding["HostIp"] == "127.0.0.1", f"{name} publishes {binding}"


# A path each service answers 200 on without a login.
HEALTH_PATHS = {
    "airflow": "/api/v2/monitor/health",
    "mlflow": "/health",
    "serving": "/health",
    "training": "/health",
}


def test_only_the_tls_proxy_publishes_and_plain_http_is_refused(
    container_stack: ContainerStack, docker_client: docker.DockerClient
) -> None:
    every_service = compose_file.load(
        COMPOSE_FILE, container_stack.variables, profiles=("monitoring",)
    )
    publishing = {s.name for s in every_service if s.ports}
    assert publishing == {"proxy", "proxy-monitoring"}, f"services publishing: {publishing}"
    for name in container_stack.long_running:
        if name == tls.PROXY:
            continue
        attrs = docker_client.containers.get(
            container_stack.containers[name].get_container_id()
        ).attrs
        published = {p: b for p, b in (attrs["NetworkSettings"]["Ports"] or {}).items() if b}
        assert not published, f"{name} publishes its own port: {published}"

    untrusting = ssl.create_default_context()  # the public CAs only, not the stack's
    for name, path in HEALTH_PATHS.items():
        answer = container_stack.http.get(container_stack.url(name) + path)
        assert answer.status_code == 200, f"https {name}{path} -> {answer.status_code}"
        plain = httpx.get(container_stack.url(name, scheme="http") + path, timeout=30)
        assert plain.status_code == 400, f"plain HTTP to {name} -> {plain.status_code}"
        assert "plain HTTP request was sent to HTTPS port" in plain.text, plain.text[:300]
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            httpx.get(container_stack.url(name) + path, verify=untrusting, timeout=30)


def test_pipeline_promotes_a_version_that_serving_answers_accurately(
    container_stack: ContainerStack, promoted: dict[str, Any]
) -> None:
    mlflow, http = container_stack.url("mlflow"), container_stack.http
    version, job = promoted["version"], promoted["job"]
    assert aliases(http, mlflow).get("production") == version

    model = served_model(http, container_stack.url("serving"), version)
    assert model["alias"] == "production"
    samples = holdout(http, container_stack.url("training"), job["dataset_id"])
    accuracy, body = served_accuracy(
        http, container_stack.url("serving"), samples, container_stack.variables["CLIENT_TOKEN"]
    )
    assert body["model"]["version"] == version
    assert accuracy >= 0.9, f"served accuracy {accuracy:.3f} on held-out digits"

    # MLflow shows the run, its metrics, its figures, and the logged model's files.
    run = get_json(http, f"{mlflow}/api/2.0/mlflow/runs/get", run_id=job["run_id"])["run"]
    assert run["info"]["status"] == "FINISHED"
    assert {"test_accuracy", "test_loss", "train_loss"} <= {
        m["key"] for m in run["data"]["metrics"]
    }
    run_files = artifact_paths(http, mlflow, run["info"]["artifact_uri"])
    assert {"confusion_matrix.png", "training_curve.png", "classes.json"} <= run_files
    mv = get_json(
        http, f"{mlflow}/api/2.0/mlflow/model-versions/get", name=MODEL_NAME, version=version
    )["model_version"]
    model_id = mv.get("model_id") or mv["source"].removeprefix("models:/")
    logged = get_json(http, f"{mlflow}/api/2.0/mlflow/logged-models/{urllib.parse.quote(model_id)}")
    model_files = artifact_paths(http, mlflow, logged["model"]["info"]["artifact_uri"])
    assert "MLmodel" in model_files, model_files


def test_new_mlflow_container_on_same_volumes_loses_nothing(
    container_stack: ContainerStack, promoted: dict[str, Any]
) -> None:
    before = registry_snapshot(container_stack.http, container_stack.url("mlflow"))
    assert before["aliases"].get("production") == promoted["version"]
    assert all(files for files in before["run_artifacts"].values()), before["run_artifacts"]

    container_stack.recreate("mlflow")
    container_stack.wait_http("mlflow", "/health", timeout=240)

    after = registry_snapshot(container_stack.http, container_stack.url("mlflow"))
    assert after == before


def test_restarted_serving_comes_back_with_the_production_version(
    container_stack: ContainerStack, promoted: dict[str, Any]
) -> None:
    version, http = promoted["version"], container_stack.http
    container_stack.restart("serving")
    serving = container_stack.url("serving")
    # /ready is 200 only with a model loaded: here it had to come from MLflow again.
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            if http.get(f"{serving}/ready", timeout=5).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(1)
    model = served_model(http, serving, version, timeout=30)
    assert model["alias"] == "production"
    samples = holdout(http, container_stack.url("training"), promoted["job"]["dataset_id"])
    accuracy, body = served_accuracy(
        http, serving, samples, container_stack.variables["CLIENT_TOKEN"]
    )
    assert body["model"]["version"] == version
    assert accuracy >= 0.9, f"served accuracy {accuracy:.3f} after restart"
