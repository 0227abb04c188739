"""Run the stub services by hand, e.g. to try the DAGs under a real scheduler without the stack.

``python -m tests.stubs`` (from this folder) prints the AIRFLOW_CONN_* exports to use, then serves
until interrupted. Jobs finish after three polls; models answer every digit right.
"""

from __future__ import annotations

import json
import time

from tests.stubs.mlflow_app import create_mlflow_app
from tests.stubs.server import StubServer
from tests.stubs.serving_app import create_serving_app
from tests.stubs.training_app import create_training_app
from tests.stubs.webhook_app import create_webhook_app
from tests.stubs.world import TOKEN, World


def main() -> None:
    world = World(polls_until_done=3)
    servers = {
        "TRAINING_SERVICE": StubServer(create_training_app(world)).start(),
        "SERVING_SERVICE": StubServer(create_serving_app(world)).start(),
        "MLFLOW": StubServer(create_mlflow_app(world)).start(),
        "ALERT_WEBHOOK": StubServer(create_webhook_app(world)).start(),
    }
    for conn_id, server in servers.items():
        conn: dict[str, object] = {"conn_type": "http", "host": "127.0.0.1", "port": server.port}
        if conn_id in ("TRAINING_SERVICE", "SERVING_SERVICE"):
            conn["password"] = TOKEN
        if conn_id == "ALERT_WEBHOOK":
            conn = {"conn_type": "http", "host": f"{server.url}/alerts"}
        print(f"export AIRFLOW_CONN_{conn_id}='{json.dumps(conn)}'", flush=True)
    try:
        while True:
            time.sleep(10)
            state = {"aliases": world.aliases, "served": world.serving_version}
            print(f"# {state} alerts={len(world.alerts)}", flush=True)
    except KeyboardInterrupt:
        for server in servers.values():
            server.stop()


if __name__ == "__main__":
    main()
