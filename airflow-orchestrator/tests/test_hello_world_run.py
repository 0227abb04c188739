"""Behaviour: hello_world runs green with no service, and its XComs flow task to task."""

from __future__ import annotations

from typing import Any


def test_hello_world_greets_the_name_from_the_run_conf(run_dag: Any) -> None:
    result = run_dag("hello_world", {"name": "Airflow"})

    assert result.state == "success", result.task_states
    assert result.xcom("say_hello") == "Hello, Airflow!"
    assert result.xcom("echo_greeting").startswith("Hello, Airflow! (run manual__")
    assert result.xcom("count_letters") == len("HelloAirflow")
