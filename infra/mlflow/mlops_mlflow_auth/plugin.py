"""The authorization function MLflow's basic-auth app calls on every request.

Configured in the auth config file (`authorization_function =
mlops_mlflow_auth.plugin:authenticate_and_authorize`, written by `launch`): MLflow's own basic
authentication first (401 without valid credentials), then `policy.decide` (403 with the
reason), then MLflow's per-resource permissions as usual.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Response, request
from mlflow.server.auth import authenticate_request_basic_auth

from .identities import ALIAS
from .policy import decide, endpoint


def _alias() -> str | None:
    """The alias a set/delete-alias request names, in its query string or its JSON body."""
    alias = request.args.get("alias")
    if alias:
        return alias
    body: Any = request.get_json(silent=True, force=True) if request.content_length else None
    return str(body["alias"]) if isinstance(body, dict) and "alias" in body else None


def authenticate_and_authorize() -> Any:
    """MLflow's Authorization for an allowed request, else a 401 or 403 Response."""
    authorization = authenticate_request_basic_auth()
    if isinstance(authorization, Response):
        return authorization
    # Only an alias request's body is read here: an artifact upload streams on untouched.
    alias = _alias() if endpoint(request.path) == ALIAS else None
    refusal = decide(str(authorization.username), request.method, request.path, alias)
    if refusal is None:
        return authorization
    body = {"error_code": "PERMISSION_DENIED", "message": refusal}
    return Response(json.dumps(body), status=403, mimetype="application/json")
