"""Test session wiring: a throwaway Airflow home on SQLite, the DagBag, stub services, dag.test.

Airflow reads its configuration when first imported, so the environment is set here, at import
time of this conftest, before any test module imports airflow.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import tenacity

ROOT = Path(__file__).resolve().parents[1]
DAGS_FOLDER = ROOT / "dags"
AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="airflow-orchestrator-tests-"))

os.environ.update(
    {
        "AIRFLOW_HOME": str(AIRFLOW_HOME),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{AIRFLOW_HOME}/airflow.db",
        "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "60",
    }
)
for name in [n for n in os.environ if n.startswith("AIRFLOW_CONN_")]:
    del os.environ[name]  # only the stub services' connections, never the developer's

from tests.consumer_expectations import exchange_violations  # noqa: E402
from tests.stubs.mlflow_app import create_mlflow_app  # noqa: E402
from tests.stubs.server import StubServer  # noqa: E402
from tests.stubs.serving_app import create_serving_app  # noqa: E402
from tests.stubs.training_app import create_training_app  # noqa: E402
from tests.stubs.webhook_app import create_webhook_app  # noqa: E402
from tests.stubs.world import TOKEN, World  # noqa: E402


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _migration is not None and _migration.poll() is None:
        _migration.kill()
    shutil.rmtree(AIRFLOW_HOME, ignore_errors=True)


@pytest.fixture(scope="session")
def dagbag() -> Any:
    """The DAG folder parsed the way the dag-processor does (bundle path on sys.path)."""
    from airflow.dag_processing.dagbag import BundleDagBag

    return BundleDagBag(dag_folder=str(DAGS_FOLDER), bundle_path=DAGS_FOLDER)


_migration: subprocess.Popen[bytes] | None = None


def pytest_sessionstart(session: pytest.Session) -> None:
    """Start `airflow db migrate` at once: it runs while the fast tests do."""
    global _migration
    _migration = subprocess.Popen(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        env=os.environ.copy(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """DAG runs last (stable order otherwise), so the migration has time to finish."""
    items.sort(key=lambda item: "run_dag" in getattr(item, "fixturenames", ()))


@pytest.fixture(scope="session")
def airflow_db() -> None:
    """The metadata database, created once per session as an operator would."""
    assert _migration is not None
    _, stderr = _migration.communicate(timeout=300)
    if _migration.returncode != 0:
        raise RuntimeError(f"airflow db migrate failed: {stderr.decode()[-2000:]}")


@dataclass
class Stack:
    world: World
    servers: dict[str, StubServer]


def _http_conn(server: StubServer, **extra: Any) -> str:
    return json.dumps({"conn_type": "http", "host": "127.0.0.1", "port": server.port, **extra})


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    """The four stub services on real uvicorn servers, wired in as Airflow connections."""
    world = World()
    servers = {
        "training": StubServer(create_training_app(world)).start(),
        "serving": StubServer(create_serving_app(world)).start(),
        "mlflow": StubServer(create_mlflow_app(world)).start(),
        "webhook": StubServer(create_webhook_app(world)).start(),
    }
    os.environ["AIRFLOW_CONN_TRAINING_SERVICE"] = _http_conn(servers["training"], password=TOKEN)
    os.environ["AIRFLOW_CONN_SERVING_SERVICE"] = _http_conn(servers["serving"], password=TOKEN)
    os.environ["AIRFLOW_CONN_MLFLOW"] = servers["mlflow"].url
    os.environ["AIRFLOW_CONN_ALERT_WEBHOOK"] = json.dumps(
        {"conn_type": "http", "host": f"{servers['webhook'].url}/alerts"}
    )
    yield Stack(world, servers)
    for server in servers.values():
        server.stop()


@pytest.fixture
def world(stack: Stack) -> World:
    """The stubs' shared state, fresh for each test."""
    stack.world.reset()
    return stack.world


@dataclass
class RunResult:
    state: str
    task_states: dict[str, str | None]
    tries: dict[str, int]
    run_id: str
    xcoms: dict[str, Any]
    # The asset events the run's tasks emitted (outlets), as stored in the metadata database.
    asset_events: list[dict[str, Any]]

    def xcom(self, task_id: str) -> Any:
        return self.xcoms.get(task_id)


def _asset_events(session: Any, dag_run: Any) -> list[dict[str, Any]]:
    from airflow.models.asset import AssetEvent, AssetModel
    from sqlalchemy import select

    rows = session.execute(
        select(AssetModel.name, AssetModel.uri, AssetEvent.source_task_id, AssetEvent.extra)
        .join(AssetModel, AssetModel.id == AssetEvent.asset_id)
        .where(AssetEvent.source_dag_id == dag_run.dag_id)
        .where(AssetEvent.source_run_id == dag_run.run_id)
        .order_by(AssetEvent.id)
    ).all()
    return [
        {"name": name, "uri": uri, "source_task_id": task_id, "extra": extra}
        for name, uri, task_id, extra in rows
    ]


def _collect(dag_run: Any) -> RunResult:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        tis = dag_run.get_task_instances(session=session)
        rows: list[Any] = session.scalars(
            XComModel.get_many(run_id=dag_run.run_id, dag_ids=dag_run.dag_id, key="return_value")
        ).all()  # type: ignore[assignment]
        xcoms = {row.task_id: XComModel.deserialize_value(row) for row in rows}
        return RunResult(
            state=str(dag_run.state),
            task_states={ti.task_id: (str(ti.state) if ti.state else None) for ti in tis},
            tries={ti.task_id: ti.try_number for ti in tis},
            run_id=dag_run.run_id,
            xcoms=xcoms,
            asset_events=_asset_events(session, dag_run),
        )


@pytest.fixture
def run_dag(dagbag: Any, airflow_db: None, stack: Stack) -> Callable[..., RunResult]:
    """Run one DAG with dag.test() against the stubs; retries and polls shortened for speed.

    After the run, every exchange with the stubs is checked against the providers' OpenAPI
    documents (``tests/consumer_expectations.py``) and must carry the run's ``X-Request-ID``;
    a violation fails the test.
    """
    from orchestration.service_http import HTTP_RETRY_ARGS

    production_wait = HTTP_RETRY_ARGS["wait"]

    def run(
        dag_id: str, conf: dict[str, Any] | None = None, *, logical_date: Any = None
    ) -> RunResult:
        dag = dagbag.dags[dag_id]
        # Same retry policy, shorter waits: 0.1 s, 0.2 s between in-task attempts.
        HTTP_RETRY_ARGS["wait"] = tenacity.wait_exponential(multiplier=0.1, max=0.5)
        for task in dag.tasks:
            task.retry_delay = timedelta(seconds=1)
            task.max_retry_delay = timedelta(seconds=2)
            if hasattr(task, "poke_interval"):
                task.poke_interval = 1
            if hasattr(task, "poll_interval"):  # the training job trigger's
                task.poll_interval = 0.5
        first_request = len(stack.world.requests)
        # In-process runs resolve the run conf into the DAG's own Param objects: put the
        # defaults back afterwards, or one test's conf leaks into the next test's run.
        saved_params = {task.task_id: copy.deepcopy(task.params) for task in dag.tasks}
        saved_dag_params = copy.deepcopy(dag.params)
        # Airflow 3.3.2's dag.test() cannot finish a run of a DAG with a DeadlineAlert: its
        # in-memory copy of the DAG keeps the alerts serialized, not as the database ids the
        # end of a run looks up. The deadline is the scheduler's business anyway (see
        # test_run_deadline.py), so the runs go without it.
        saved_deadline, dag.deadline = dag.deadline, None
        try:
            # The same logical_date again replaces the run by one with the same run id and
            # fresh task instances: what clearing the run in the UI does.
            when = {"logical_date": logical_date, "run_after": logical_date} if logical_date else {}
            result = _collect(dag.test(run_conf=conf, **when))
        finally:
            HTTP_RETRY_ARGS["wait"] = production_wait
            dag.params = saved_dag_params
            dag.deadline = saved_deadline
            for task in dag.tasks:
                task.params = saved_params[task.task_id]
        # Every run is also a consumer contract test: what the DAG sent and what the stubs
        # answered must both match the providers' documents in contracts/.
        problems = exchange_violations(stack.world.requests)
        assert not problems, "contract violations:\n" + "\n".join(problems)
        # Every call of the run, whatever sent it (HttpOperator, job trigger, call_service).
        expected_id = f"{dag_id}/{result.run_id}"
        unlabelled = [
            f"{r['method']} {r['path']} ({r['service']}): {r['headers'].get('x-request-id')!r}"
            for r in stack.world.requests[first_request:]
            if r["headers"].get("x-request-id") != expected_id
        ]
        assert not unlabelled, f"calls without X-Request-ID {expected_id}:\n" + "\n".join(
            unlabelled
        )
        return result

    return run
