"""A small client of Airflow 3's REST API: log in, pools, unpause, trigger, wait, read task logs.

Used by `make demo` and by integration-tests to drive the real scheduler the way a user or a
CI job would. Standard library only.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

FINISHED = {"success", "failed"}
# Seconds between two polls: a task of these DAGs takes about one second, so a slower poll
# adds up to a visible part of a run's measured time.
POLL_SECONDS = 0.5


class AirflowError(RuntimeError):
    """Airflow answered with an error, or a DAG run did not succeed."""


class TransientError(AirflowError):
    """No answer, or a 5xx: worth asking again (a busy api-server on 2 cores)."""


@dataclass
class DagRunResult:
    dag_id: str
    run_id: str
    state: str
    seconds: float
    failed_tasks: dict[str, str]  # task_id -> log excerpt


def request_json(
    method: str,
    url: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
    timeout: float = 30.0,
) -> Any:
    """One JSON request; raises AirflowError with the server's detail on 4xx/5xx."""
    data = None if body is None else json.dumps(body).encode()
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"not an HTTP URL: {url!r}")
    # Checked just above: http(s) only, never file: or a custom scheme.
    req = urllib.request.Request(url, data=data, method=method)  # noqa: S310
    req.add_header("Accept", "application/json")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    for key, value in (headers or {}).items():
        req.add_header(key, value)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 (scheme checked)
            raw = resp.read()
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")[:2000]
        error = TransientError if exc.code >= 500 else AirflowError
        raise error(f"{method} {url} -> {exc.code}: {detail}") from exc
    except (urllib.error.URLError, OSError) as exc:  # refused, reset, timed out
        raise TransientError(f"{method} {url}: {exc}") from exc
    return json.loads(raw) if raw else None


class AirflowClient:
    """Authenticated calls to `/api/v2` of one Airflow api-server."""

    def __init__(self, base_url: str, username: str, password: str) -> None:
        self.base = base_url.rstrip("/")
        self.username = username
        self.password = password
        self._token: str | None = None

    def _headers(self) -> dict[str, str]:
        if self._token is None:
            answer = request_json(
                "POST",
                f"{self.base}/auth/token",
                {"username": self.username, "password": self.password},
            )
            self._token = answer["access_token"]
        return {"Authorization": f"Bearer {self._token}"}

    def api(self, method: str, path: str, body: Any = None, attempts: int = 5) -> Any:
        """One API call; reads (GET) are retried with backoff on transient errors."""
        tries = attempts if method == "GET" else 1
        for attempt in range(1, tries + 1):
            try:
                return request_json(method, f"{self.base}/api/v2{path}", body, self._headers())
            except TransientError:
                if attempt == tries:
                    raise
                time.sleep(min(2**attempt, 15))
        raise AssertionError("unreachable")

    def wait_for_dag(self, dag_id: str, timeout: float = 120.0) -> dict[str, Any]:
        """Wait until the dag-processor has parsed the DAG; fail on its import error."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return dict(self.api("GET", f"/dags/{dag_id}"))
            except AirflowError as exc:
                if "-> 404" not in str(exc):
                    raise
            errors = self.api("GET", "/importErrors").get("import_errors", [])
            if errors:
                raise AirflowError(f"DAG import errors: {json.dumps(errors)[:2000]}")
            if time.monotonic() > deadline:
                raise AirflowError(f"DAG {dag_id!r} was not parsed within {timeout:.0f} s")
            time.sleep(POLL_SECONDS)

    def set_pool(self, name: str, slots: int, description: str) -> None:
        """Create the pool, or give an existing one these slots (idempotent)."""
        body = {"slots": slots, "description": description, "include_deferred": False}
        try:
            # The patch body names the pool too (`pool`, as Airflow 3.3 requires).
            path = f"/pools/{urllib.parse.quote(name, safe='')}"
            self.api("PATCH", path, {"pool": name, **body})
        except AirflowError as exc:
            if "-> 404" not in str(exc):
                raise
            self.api("POST", "/pools", {"name": name, **body})

    def unpause(self, dag_id: str) -> None:
        self.api("PATCH", f"/dags/{dag_id}", {"is_paused": False})

    def pause(self, dag_id: str) -> None:
        self.api("PATCH", f"/dags/{dag_id}", {"is_paused": True})

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None) -> str:
        run = self.api(
            "POST", f"/dags/{dag_id}/dagRuns", {"logical_date": None, "conf": conf or {}}
        )
        return str(run["dag_run_id"])

    def clear(self, dag_id: str, run_id: str, only_failed: bool = False) -> None:
        """Clear a run's task instances (all, or the failed ones): they run again, same run."""
        quoted = urllib.parse.quote(run_id, safe="")
        self.api(
            "POST",
            f"/dags/{dag_id}/dagRuns/{quoted}/clear",
            {"dry_run": False, "only_failed": only_failed},
        )

    def wait_for_run(
        self,
        dag_id: str,
        run_id: str,
        timeout: float = 300.0,
        progress: Callable[[str, dict[str, str]], None] | None = None,
    ) -> DagRunResult:
        """Poll a DAG run until it finishes; collect the failed tasks' log excerpts."""
        start = time.monotonic()
        quoted = urllib.parse.quote(run_id, safe="")
        while True:
            run = self.api("GET", f"/dags/{dag_id}/dagRuns/{quoted}")
            states = self.task_states(dag_id, run_id)
            if progress:
                progress(run["state"], states)
            if run["state"] in FINISHED:
                break
            if time.monotonic() - start > timeout:
                raise AirflowError(
                    f"{dag_id} run {run_id} still {run['state']} after {timeout:.0f} s: {states}"
                )
            time.sleep(POLL_SECONDS)
        failed = {
            task: self.task_log(dag_id, run_id, task)
            for task, state in states.items()
            if state == "failed"
        }
        return DagRunResult(dag_id, run_id, run["state"], time.monotonic() - start, failed)

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str]:
        quoted = urllib.parse.quote(run_id, safe="")
        answer = self.api("GET", f"/dags/{dag_id}/dagRuns/{quoted}/taskInstances")
        return {ti["task_id"]: ti["state"] or "none" for ti in answer["task_instances"]}

    def task_log(self, dag_id: str, run_id: str, task_id: str, lines: int = 40) -> str:
        """The last lines of a task's latest try, as plain text."""
        quoted = urllib.parse.quote(run_id, safe="")
        base = f"/dags/{dag_id}/dagRuns/{quoted}/taskInstances/{task_id}"
        try:
            ti = self.api("GET", base)
            answer = self.api("GET", f"{base}/logs/{max(int(ti.get('try_number') or 1), 1)}")
        except AirflowError as exc:
            return f"(log not available: {exc})"
        content = answer.get("content", answer) if isinstance(answer, dict) else answer
        if isinstance(content, list):
            text = "\n".join(
                str(item.get("event", item)) if isinstance(item, dict) else str(item)
                for item in content
            )
        else:
            text = str(content)
        return "\n".join(text.splitlines()[-lines:])
