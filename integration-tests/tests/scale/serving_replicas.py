"""The serving replicas of the scale stack, each seen from inside its own container.

Nothing but the TLS proxy publishes a port, and the host never uses container addresses:
a replica's own view (its live accuracy, its metrics, whether it is ready) is read by a
Python one-liner run in its container against 127.0.0.1:5001 (`ScaleStack.exec`).
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

from scale_stack import ScaleStack

SERVING_REPLICAS = ("serving", "serving-2")


def replica_get(stack: ScaleStack, name: str, path: str) -> str:
    """GET a path of one serving replica from inside its container (nothing is published)."""
    code = (
        "import sys, urllib.request; "
        "sys.stdout.write(urllib.request.urlopen("
        "'http://127.0.0.1:5001' + sys.argv[1], timeout=10).read().decode())"
    )
    exit_code, output = stack.exec(name, ["python", "-c", code, path], timeout=30)
    assert exit_code == 0, f"{name} GET {path} -> exit {exit_code}: {output[-500:]}"
    return output


def live_accuracy(stack: ScaleStack, name: str, version: str) -> dict[str, Any]:
    live = json.loads(replica_get(stack, name, "/v1/model"))["live"]
    assert live["state"] == "shared", f"{name} keeps its live state in: {live['state']}"
    return dict(live["accuracy"].get(version, {"feedback": 0, "correct": 0}))


def predictions_counted(stack: ScaleStack, name: str) -> float:
    """The replica's predictions_total, summed over versions and labels."""
    metrics = replica_get(stack, name, "/metrics")
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("predictions_total{")
    )


def replica_ready(stack: ScaleStack, name: str) -> bool:
    with contextlib.suppress(AssertionError, json.JSONDecodeError):
        return json.loads(replica_get(stack, name, "/ready")).get("status") == "ready"
    return False
