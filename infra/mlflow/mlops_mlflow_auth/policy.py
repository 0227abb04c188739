"""The rules MLflow's per-resource permissions cannot express, as one pure function.

MLflow grants READ, EDIT or MANAGE on an experiment or a registered model; whoever may set
one alias may set them all, and MANAGE (needed to delete a version) also allows deleting the
model and granting permissions. `decide` narrows that per identity (see identities.py):

- the admin: no extra rule;
- an alias is set or deleted only by the identity that owns it (`staging`: training,
  `production`: orchestrator); other users never move those two;
- readers (serving, viewer) only read: GET/HEAD/OPTIONS and the POST searches;
- the orchestrator writes only aliases and version deletions;
- training writes what its EDIT grants allow, and never deletes.

It runs after authentication and before MLflow's own checks, which still apply.
"""

from __future__ import annotations

import re

from . import identities as ids

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_API = re.compile(r"^/(?:ajax-)?api/\d+\.\d+/mlflow/(?P<endpoint>.*)$")
# Reads that MLflow's API sends as POST (a search body, a GraphQL query).
_READ_POSTS = re.compile(r"(^|/)(search|search-datasets|get-history-bulk-interval)$")


def endpoint(path: str) -> str | None:
    """The part of an MLflow REST path after `/api/<version>/mlflow/`, or None."""
    match = _API.match(path)
    return match["endpoint"].rstrip("/") if match else None


def is_read(method: str, path: str) -> bool:
    """True for a request that changes nothing in MLflow."""
    if method in SAFE_METHODS:
        return True
    if method != "POST":
        return False
    if path.rstrip("/").endswith("/graphql"):
        return True
    found = endpoint(path)
    return found is not None and bool(_READ_POSTS.search(found))


def decide(username: str, method: str, path: str, alias: str | None) -> str | None:
    """None when the request may go on to MLflow's checks, else why it is refused."""
    if username == ids.ADMIN:
        return None
    method = method.upper()
    identity = ids.identities().get(username)
    found = endpoint(path)
    if found == ids.ALIAS and method in {"POST", "DELETE"}:
        owner = ids.guarded_aliases().get(alias or "")
        if identity is not None and (alias or "") not in identity.aliases:
            allowed = ", ".join(sorted(identity.aliases)) or "none"
            return (
                f"user {username!r} may not move alias {alias!r} (aliases it may move: {allowed})"
            )
        if identity is None and owner is not None:
            return f"alias {alias!r} is moved only by {owner!r} (or the admin)"
        return None
    if is_read(method, path) or identity is None:
        return None
    if identity.writes is None:
        if method == "DELETE" or (found or "").endswith("delete"):
            return f"user {username!r} never deletes in MLflow"
        return None
    if found in identity.writes:
        return None
    return (
        f"user {username!r} may not {method} {path} (it only reads, and writes only: "
        + (", ".join(sorted(identity.writes)) or "nothing")
        + ")"
    )
