"""HTTP plumbing every DAG shares: connection ids, timeouts, retries with backoff, error detail.

All traffic leaves through Airflow HTTP connections (``AIRFLOW_CONN_<ID>``), never through
URLs or tokens written in DAG code. Two layers of retry protect each call:

* inside one task attempt, tenacity retries connection errors, timeouts, 429 and 5xx with
  exponential backoff (``HTTP_RETRY_ARGS``), which rides out a service restart in seconds;
* across attempts, the task's own ``retries`` with ``retry_exponential_backoff`` take over.

A 4xx other than 408/429 means the request itself is wrong, so it fails the task at once
(``AirflowFailException``) instead of burning retries; the service's ``detail`` is in the message.

Every request carries ``X-Request-ID: <dag_id>/<run_id>``: the services log it with each line
they write while handling the request, so one DAG run can be followed across all of them.
"""

from __future__ import annotations

import json
import logging
from typing import Any
from urllib.parse import urlencode

import tenacity
from airflow.providers.http.hooks.http import HttpHook
from airflow.providers.http.operators.http import HttpOperator
from airflow.sdk import BaseHook, get_current_context
from airflow.sdk.exceptions import AirflowException, AirflowFailException
from requests import PreparedRequest, Response
from requests.auth import AuthBase
from requests.exceptions import ConnectionError as RequestsConnectionError
from requests.exceptions import Timeout

log = logging.getLogger(__name__)

TRAINING_CONN_ID = "training_service"
SERVING_CONN_ID = "serving_service"
MLFLOW_CONN_ID = "mlflow"
ALERT_WEBHOOK_CONN_ID = "alert_webhook"

# (connect, read) seconds for every request; a training submit or a predict answers well within.
REQUEST_TIMEOUT = (5.0, 30.0)
# Status codes worth asking again: the service is restarting, overloaded or timed out.
RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})
HTTP_ATTEMPTS = 3


def _is_retryable_response(response: Any) -> bool:
    return isinstance(response, Response) and response.status_code in RETRYABLE_STATUS


def _log_before_retry(state: tenacity.RetryCallState) -> None:
    outcome = state.outcome
    if outcome is None:
        return
    if outcome.failed:
        reason = repr(outcome.exception())
    else:
        response = outcome.result()
        reason = f"HTTP {response.status_code}: {error_detail(response)}"
    log.warning("attempt %d failed (%s); retrying with backoff", state.attempt_number, reason)


def _last_outcome(state: tenacity.RetryCallState) -> Any:
    # Hand the last response (or exception) back so the response check reports the real detail.
    if state.outcome is None:
        raise RuntimeError("retry callback called before any attempt")
    return state.outcome.result()


HTTP_RETRY_ARGS: dict[str, Any] = {
    "stop": tenacity.stop_after_attempt(HTTP_ATTEMPTS),
    "wait": tenacity.wait_exponential(multiplier=1, min=1, max=10),
    "retry": (
        tenacity.retry_if_exception_type((RequestsConnectionError, Timeout))
        | tenacity.retry_if_result(_is_retryable_response)
    ),
    "before_sleep": _log_before_retry,
    "retry_error_callback": _last_outcome,
}

# extra_options for HttpOperator/HttpSensor: our response checks own the status handling.
HTTP_EXTRA_OPTIONS: dict[str, Any] = {"timeout": REQUEST_TIMEOUT, "check_response": False}
JSON_HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}

REQUEST_ID_HEADER = "X-Request-ID"
# The same id for HttpOperator/HttpSensor (a template field rendered per run) and call_service.
REQUEST_ID_TEMPLATE = "{{ dag.dag_id }}/{{ run_id }}"


def request_id(dag_id: str, run_id: str) -> str:
    """The request id of every call a DAG run makes: ``<dag_id>/<run_id>``."""
    return f"{dag_id}/{run_id}"


def current_request_id() -> str | None:
    """The running task's request id; None outside a task (e.g. a helper called from a shell)."""
    try:
        context = get_current_context()
    except RuntimeError:
        return None
    return request_id(context["dag"].dag_id, context["run_id"])


def request_id_headers() -> dict[str, str]:
    rid = current_request_id()
    return {REQUEST_ID_HEADER: rid} if rid else {}


def error_detail(response: Response) -> str:
    """Return the service's own explanation of a failed request, as short text."""
    return detail_of(response.text, fallback=response.reason or "no body")


def detail_of(text: str, *, fallback: str = "no body") -> str:
    """An error body's explanation: FastAPI's ``detail``, MLflow's ``error_code: message``."""
    try:
        body = json.loads(text)
    except ValueError:
        return text[:500] or fallback
    if isinstance(body, dict):
        if "detail" in body:  # FastAPI services
            detail = body["detail"]
            return detail if isinstance(detail, str) else json.dumps(detail)[:500]
        if "message" in body:  # MLflow REST errors: {"error_code": ..., "message": ...}
            return f"{body.get('error_code', 'ERROR')}: {body['message']}"
    return json.dumps(body)[:500]


def check_service_response(response: Response) -> bool:
    """Response check for HttpOperator and our own calls: raise with the service's detail."""
    if response.status_code < 400:
        return True
    request = response.request
    message = (
        f"{request.method if request else 'HTTP'} {response.url} -> "
        f"HTTP {response.status_code}: {error_detail(response)}"
    )
    if response.status_code in RETRYABLE_STATUS:
        raise AirflowException(message)  # transient: let the task retry
    raise AirflowFailException(message)  # the request is wrong: retrying cannot help


def json_body(response: Response) -> Any:
    """Response filter: the decoded JSON body (pushed to XCom by HttpOperator)."""
    return response.json()


def bearer_auth(conn_id: str) -> type[AuthBase]:
    """Auth class for HttpHook/HttpOperator that sends the connection password as a Bearer token.

    HttpHook builds the auth object as ``auth_type(login, password)`` when the connection has a
    login and as ``auth_type()`` otherwise, so without a login the token is looked up lazily, at
    request time (never at parse time). No password means no header: open endpoints still work,
    and an ``Authorization`` header set in the connection extra wins.
    """

    class ConnectionBearerAuth(AuthBase):
        def __init__(self, login: str | None = None, password: str | None = None) -> None:
            self._token = password

        def __call__(self, request: PreparedRequest) -> PreparedRequest:
            token = self._token
            if token is None:
                token = BaseHook.get_connection(conn_id).password
            if token and "Authorization" not in request.headers:
                request.headers["Authorization"] = f"Bearer {token}"
            return request

    ConnectionBearerAuth.__name__ = f"BearerAuth_{conn_id}"
    return ConnectionBearerAuth


def call_service(
    conn_id: str,
    method: str,
    endpoint: str,
    *,
    payload: Any = None,
    params: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
    bearer: bool = False,
    raw: bool = False,
) -> Any:
    """Send one JSON request through an Airflow connection, with timeout, retries and checks.

    Returns the decoded JSON body (None for an empty body). ``bearer`` sends the connection
    password as ``Authorization: Bearer`` (the services' mutating endpoints need it); ``raw``
    returns the body as text (e.g. Prometheus metrics).
    """
    hook = HttpHook(
        method=method.upper(),
        http_conn_id=conn_id,
        auth_type=bearer_auth(conn_id) if bearer else None,
    )
    request_kwargs: dict[str, Any] = {}
    data: Any = None
    if method.upper() == "GET":
        data = params  # HttpHook sends GET data as the query string
    elif params:
        endpoint = f"{endpoint}?{urlencode(params)}"
    if payload is not None:
        request_kwargs["json"] = payload
    response = hook.run_with_advanced_retry(
        HTTP_RETRY_ARGS,
        endpoint,
        data,
        {**JSON_HEADERS, **request_id_headers(), **(headers or {})},
        HTTP_EXTRA_OPTIONS,
        **request_kwargs,
    )
    check_service_response(response)
    if raw:
        return response.text
    return response.json() if response.content else None


class JsonHttpOperator(HttpOperator):
    """HttpOperator whose ``request_kwargs`` are templated too.

    The JSON body goes out as ``request_kwargs["json"]``, so it can hold XComArgs
    (``op.output["dataset_id"]``) and DAG params, resolved to their values at run time; a
    ``data`` string would have to pull them in with Jinja.
    """

    template_fields = (*HttpOperator.template_fields, "request_kwargs")


def service_operator(
    *,
    task_id: str,
    conn_id: str,
    endpoint: str,
    method: str = "POST",
    body: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
    **kwargs: Any,
) -> HttpOperator:
    """HttpOperator with this project's timeouts, in-task retries, Bearer auth and checks.

    ``body`` is sent as JSON; its values may be XComArgs and DAG params. The decoded response
    body goes to XCom, and each of its top-level keys too (``multiple_outputs``), so that
    ``op.output["job_id"]`` is an XComArg. ``X-Request-ID`` is rendered from the run like
    ``call_service``'s.
    """
    return JsonHttpOperator(
        task_id=task_id,
        http_conn_id=conn_id,
        endpoint=endpoint,
        method=method,
        request_kwargs={"json": body} if body is not None else None,
        headers={**JSON_HEADERS, REQUEST_ID_HEADER: REQUEST_ID_TEMPLATE, **(headers or {})},
        auth_type=bearer_auth(conn_id),
        extra_options=HTTP_EXTRA_OPTIONS,
        retry_args=HTTP_RETRY_ARGS,
        response_check=check_service_response,
        response_filter=json_body,
        log_response=True,
        multiple_outputs=True,
        **kwargs,
    )
