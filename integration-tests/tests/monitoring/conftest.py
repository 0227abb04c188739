"""Fixtures of the monitoring suite (see monitoring_stack for what runs and why).

Session scope: the services, Prometheus and the traffic are started and sent once; every
dashboard query is then checked against the same Prometheus.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from monitoring_stack import (
    API_TOKEN,
    SERVICES,
    Processes,
    Prometheus,
    Services,
    Traffic,
    binary,
    free_port,
    train_and_promote,
    wait_for,
    write_prometheus_copy,
)

from scripts.embedded.components import components
from scripts.embedded.config import StackConfig
from scripts.embedded.processes import http_ok
from scripts.embedded.stack import Stack


@pytest.fixture(scope="session")
def processes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Processes]:
    procs = Processes(tmp_path_factory.mktemp("monitoring") / "logs")
    try:
        yield procs
    finally:
        procs.stop()


@pytest.fixture(scope="session")
def services(tmp_path_factory: pytest.TempPathFactory, processes: Processes) -> Services:
    """MLflow (SQLite), training and serving, started side by side and waited for."""
    home = tmp_path_factory.mktemp("services")
    # Airflow is not started, so its port is never bound; the venvs are the default ones.
    ports = {f"{name.upper()}_PORT": str(free_port()) for name in SERVICES}
    cfg = StackConfig.from_env({"STACK_HOME": str(home), "SERVING_POLL_INTERVAL": "1", **ports})
    (home / "mlflow").mkdir()
    wanted = [c for c in components(cfg) if c.name in SERVICES]
    assert [c.name for c in wanted] == list(SERVICES), "the embedded stack lost a component"
    for comp in wanted:
        venv_python = Path(comp.argv[0]).parent / "python"
        if not venv_python.exists():
            pytest.fail(f"{venv_python} is missing: run `make setup` at the repository root")
        env = dict(comp.env)
        if "API_TOKEN" in env:
            env["API_TOKEN"] = API_TOKEN
        processes.start(comp.name, comp.argv, env, comp.cwd)
    for comp in wanted:

        def healthy(comp: Any = comp) -> bool:
            processes.check_alive(comp.name)
            return http_ok(comp.health_url or "")

        wait_for(f"{comp.name} at {comp.health_url}", healthy, timeout=240)
    Stack(cfg).bootstrap_mlflow()  # MLflow's users (basic auth), as `make up` creates them
    return Services(
        cfg.mlflow_url,
        cfg.training_url,
        cfg.serving_url,
        cfg.serving_port,
        cfg.training_port,
        cfg.mlflow_auth_header("orchestrator"),
    )


@pytest.fixture(scope="session")
def prometheus(
    tmp_path_factory: pytest.TempPathFactory, processes: Processes, services: Services
) -> Prometheus:
    home = tmp_path_factory.mktemp("prometheus")
    config = write_prometheus_copy(
        home / "config",
        {
            "ml-serving-service": f"127.0.0.1:{services.serving_port}",
            "ml-training-service": f"127.0.0.1:{services.training_port}",
        },
    )
    port = free_port()
    processes.start(
        "prometheus",
        [
            binary("prometheus"),
            f"--config.file={config}",
            f"--storage.tsdb.path={home / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        {},
    )
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        processes.check_alive("prometheus")
        return http_ok(f"{url}/-/ready")

    wait_for("prometheus /-/ready", ready, timeout=60)
    prom = Prometheus(url, config.parent)
    wait_for(
        "a first successful scrape of both services",
        lambda: len(prom.query("up == 1")) == 2,
        timeout=30,
    )
    return prom


@pytest.fixture(scope="session")
def traffic(services: Services, prometheus: Prometheus) -> Traffic:
    """A served model, predictions on held-out digits, feedback on each, one bad request.

    Returns once Prometheus holds at least three scrapes taken after the traffic, so
    that every rate() over the dashboard's window has samples on both sides of it.
    """
    svc = services
    model_name, version, dataset_id = train_and_promote(svc)
    wait_for(
        f"serving to load version {version}",
        lambda: (
            httpx.get(f"{svc.serving_url}/v1/model", timeout=10).json().get("version") == version
        ),
        timeout=90,
        every=1,
    )
    samples = httpx.get(
        f"{svc.training_url}/v1/datasets/{dataset_id}/samples",
        params={"split": "test", "limit": 64},
        timeout=30,
    ).json()
    predicted = feedback = correct = 0
    for start in range(0, len(samples["instances"]), 16):
        batch = samples["instances"][start : start + 16]
        labels = samples["labels"][start : start + 16]
        answer = httpx.post(
            f"{svc.serving_url}/v1/predict", json={"instances": batch}, headers=svc.auth, timeout=30
        )
        assert answer.status_code == 200, answer.text
        predicted += len(batch)
        # Without prediction ids (feedback not implemented) the live-quality panels stay
        # empty and their dashboard checks fail with a message naming them.
        for prediction_id, label in zip(
            answer.json().get("prediction_ids", []), labels, strict=False
        ):
            given = httpx.post(
                f"{svc.serving_url}/v1/feedback",
                json={"prediction_id": prediction_id, "label": label},
                headers=svc.auth,
                timeout=10,
            )
            assert given.status_code == 200, given.text
            feedback += 1
            correct += bool(given.json()["correct"])
    bad = httpx.post(f"{svc.serving_url}/v1/predict", json={"instances": "nope"}, timeout=10)
    assert bad.status_code == 422, bad.text

    wait_for(
        "Prometheus to scrape the predictions",
        lambda: prometheus.scalar('sum(predictions_total{job="ml-serving-service"})') == predicted,
        timeout=30,
    )
    wait_for(
        "three scrapes of the new series",
        lambda: (
            (
                prometheus.scalar(
                    'min(count_over_time(predictions_total{job="ml-serving-service"}[1m]))'
                )
                or 0
            )
            >= 3
        ),
        timeout=30,
    )
    return Traffic(model_name, version, predicted, feedback, correct, rejected=1)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    """On a failed test, attach the last log lines of every process this suite started."""
    report = yield
    procs = getattr(item, "funcargs", {}).get("processes")
    if report.failed and isinstance(procs, Processes):
        for name in procs.running:
            report.sections.append((f"{name} log", procs.tail(name)))
    return report
