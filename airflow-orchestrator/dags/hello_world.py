"""
### hello_world

A first DAG that needs no service: a TaskFlow task returns a greeting (pushed to XCom), a
templated Bash task pulls it back and echoes it with the run id, and a last TaskFlow task
receives it as an argument. Trigger it with `{"name": "..."}` to greet someone else.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import Param, dag, task


@dag(
    dag_id="hello_world",
    schedule=None,
    catchup=False,
    tags=["example"],
    doc_md=__doc__,
    default_args={"owner": "ml-platform", "retries": 1, "retry_delay": timedelta(seconds=5)},
    params={"name": Param("world", type="string", minLength=1)},
)
def hello_world() -> None:
    @task
    def say_hello(params: dict | None = None) -> str:
        """Build the greeting; its return value is the task's XCom."""
        if params is None:
            raise RuntimeError("say_hello ran without the DAG's params")
        return f"Hello, {params['name']}!"

    echo_greeting = BashOperator(
        task_id="echo_greeting",
        # Jinja renders run_id and the XCom of say_hello before bash runs; they reach bash as
        # environment variables so that a name with quotes cannot break the command.
        bash_command='echo "$GREETING (run $RUN_ID)"',
        env={"GREETING": "{{ ti.xcom_pull(task_ids='say_hello') }}", "RUN_ID": "{{ run_id }}"},
        append_env=True,
    )

    @task
    def count_letters(greeting: str) -> int:
        """Receive the XCom as an argument and return a derived value."""
        letters = sum(ch.isalpha() for ch in greeting)
        print(f"{greeting!r} has {letters} letters")
        return letters

    greeting = say_hello()
    greeting >> echo_greeting
    count_letters(greeting)


hello_world()
