"""Bearer tokens with scopes: which token may call which mutating route.

Scopes: `train` (POST /v1/datasets, POST /v1/train) and `admin` (POST /v1/jobs/{id}/cancel).
`API_TOKEN` is one token holding every scope; `API_TOKENS` names several,
`<name>:<scope>[,<scope>...]:<token>`, entries separated by `;` or newlines. No valid token
is a 401, a valid one without the route's scope a 403 naming the scope. A presented token is
compared as bytes with `hmac.compare_digest` against every configured token, so the time
taken does not say which one matched; a token that is not ASCII never matches (401, never a
500). Names go to the startup log; token values go nowhere.
"""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass

SCOPES = ("train", "admin")
#: The name API_TOKEN's token carries in logs.
API_TOKEN_NAME = "api_token"  # noqa: S105 (a name for logs, not a secret)
_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
# Printable ASCII without spaces: what an `Authorization: Bearer` header carries unchanged.
_SECRET = re.compile(r"[\x21-\x7e]+")
_BEARER_PREFIX = b"bearer "


class TokenConfigError(ValueError):
    """API_TOKEN or an API_TOKENS entry is malformed; the message never holds a token."""


@dataclass(frozen=True)
class Refusal:
    """401 (no valid token) or 403 (valid token, scope missing), with its detail."""

    status: int
    detail: str

    @property
    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": "Bearer"} if self.status == 401 else {}


@dataclass(frozen=True)
class NamedToken:
    name: str
    scopes: frozenset[str]
    secret: bytes


@dataclass(frozen=True)
class Tokens:
    """The configured tokens; none at all is the open local mode."""

    entries: tuple[NamedToken, ...]

    @property
    def empty(self) -> bool:
        return not self.entries

    @classmethod
    def parse(cls, api_token: str | None, api_tokens: str | None) -> Tokens:
        entries: list[NamedToken] = []
        if api_token:
            if not _SECRET.fullmatch(api_token):
                raise TokenConfigError("API_TOKEN must be printable ASCII without spaces")
            entries.append(NamedToken(API_TOKEN_NAME, frozenset(SCOPES), api_token.encode()))
        for number, text in enumerate(re.split(r"[;\n]", api_tokens or ""), start=1):
            if text.strip():
                entries.append(_entry(text.strip(), number))
        seen: set[str] = set()
        for entry in entries:
            if entry.name in seen:
                raise TokenConfigError(
                    f"API_TOKENS names '{entry.name}' more than once: give each token its own "
                    f"name ('{API_TOKEN_NAME}' is API_TOKEN's)"
                )
            seen.add(entry.name)
        return cls(tuple(entries))

    def describe(self) -> str:
        """`name (scope,scope), ...` for the startup log."""
        return ", ".join(f"{e.name} ({','.join(sorted(e.scopes))})" for e in self.entries)

    def find(self, presented: bytes) -> NamedToken | None:
        """The token equal to `presented`; every token is compared, whatever matched first."""
        found = None
        for entry in self.entries:
            if hmac.compare_digest(presented, entry.secret):
                found = entry
        return found

    def check(self, authorization: bytes | None, scope: str, operation: str) -> Refusal | None:
        """None when the request may go on, else why not; `authorization` is the raw header."""
        if not self.entries:
            return None
        token = None
        if authorization is not None and authorization[:7].lower() == _BEARER_PREFIX:
            token = self.find(authorization[7:].strip())
        if token is None:
            return Refusal(
                401,
                f"missing or unknown bearer token: {operation} needs "
                f"'Authorization: Bearer <token>' with scope '{scope}'",
            )
        if scope not in token.scopes:
            return Refusal(403, f"this token lacks scope '{scope}' (needed for {operation})")
        return None


def _entry(text: str, number: int) -> NamedToken:
    if text.count(":") < 2:  # whatever was written may be a bare token: never echo it
        raise TokenConfigError(
            f"API_TOKENS entry {number}: write <name>:<scope>[,<scope>...]:<token>"
        )
    name, _, rest = text.partition(":")
    scope_list, _, secret = rest.partition(":")
    name, secret = name.strip(), secret.strip()
    where = f"API_TOKENS entry {number}" + (f" ('{name}')" if _NAME.fullmatch(name) else "")
    if not _NAME.fullmatch(name):
        raise TokenConfigError(
            f"{where}: write <name>:<scope>[,<scope>...]:<token>, the name 1-64 of "
            "A-Z a-z 0-9 _ . -"
        )
    scopes = frozenset(s.strip() for s in scope_list.split(",") if s.strip())
    unknown = sorted(scopes - set(SCOPES))
    if not scopes or unknown:
        raise TokenConfigError(
            f"{where}: unknown or missing scopes {unknown}; the training service's scopes "
            f"are {list(SCOPES)}"
        )
    if not secret:
        raise TokenConfigError(f"{where}: the token is empty")
    if not _SECRET.fullmatch(secret):
        raise TokenConfigError(f"{where}: the token must be printable ASCII without spaces")
    return NamedToken(name, scopes, secret.encode())
