"""Bearer tokens with scopes, shared by the FastAPI routes and the scoring fast path.

Scopes: `predict` (POST /v1/predict, /v1/predict/images, /invocations), `feedback`
(POST /v1/feedback), `admin` (POST /v1/model/reload). `API_TOKEN` holds them all;
`API_TOKENS` names several tokens, `<name>:<scope>[,<scope>...]:<token>` separated by `;` or
newlines. A request without a valid token gets 401; a valid token without the route's scope
gets 403 naming the scope. Tokens are compared as bytes with `hmac.compare_digest` against
every configured token (the time taken does not tell which one matched, and a token that is
not ASCII is simply unknown: 401, never a 500). Names reach the logs, token values never.
"""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass

SCOPES = ("predict", "feedback", "admin")
API_TOKEN_NAME = "api_token"  # noqa: S105 - the name shown in logs, not a secret
_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
# Printable ASCII without spaces: what fits an `Authorization: Bearer` header unchanged.
_TOKEN = re.compile(r"[\x21-\x7e]+")
_BEARER = b"bearer "
AUTHORIZATION = b"authorization"


class TokenConfigError(ValueError):
    """An API_TOKENS entry is malformed; the message names the entry, never its token."""


@dataclass(frozen=True)
class Denied:
    """Why a request is refused: 401 (no valid token) or 403 (valid, lacks the scope)."""

    status: int
    detail: str

    @property
    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": "Bearer"} if self.status == 401 else {}


@dataclass(frozen=True)
class Token:
    name: str
    scopes: frozenset[str]
    secret: bytes


@dataclass(frozen=True)
class TokenSet:
    """Every configured token; empty when none is (the local, open mode)."""

    tokens: tuple[Token, ...]

    @property
    def empty(self) -> bool:
        return not self.tokens

    @classmethod
    def from_settings(cls, api_token: str | None, api_tokens: str | None) -> TokenSet:
        tokens: list[Token] = []
        if api_token:
            if not _TOKEN.fullmatch(api_token):
                raise TokenConfigError("API_TOKEN must be printable ASCII without spaces")
            tokens.append(Token(API_TOKEN_NAME, frozenset(SCOPES), api_token.encode()))
        for position, entry in enumerate(re.split(r"[;\n]", api_tokens or ""), start=1):
            if entry.strip():
                tokens.append(_parse_entry(entry.strip(), position))
        names = [t.name for t in tokens]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise TokenConfigError(f"API_TOKENS names {duplicates} more than once")
        return cls(tuple(tokens))

    def describe(self) -> str:
        """Names and scopes for the startup log (never a token value)."""
        return ", ".join(f"{t.name} ({','.join(sorted(t.scopes))})" for t in self.tokens)

    def match(self, presented: bytes) -> Token | None:
        """The token equal to `presented`, comparing with every one of them."""
        found = None
        for token in self.tokens:
            if hmac.compare_digest(presented, token.secret):
                found = token
        return found

    def authorize(
        self, authorization: bytes | None, scope: str, operation: str, open_: bool = False
    ) -> Denied | None:
        """None when the request may proceed, else the refusal to send."""
        if open_ or not self.tokens:
            return None
        token = None
        if authorization is not None and authorization[:7].lower() == _BEARER:
            token = self.match(authorization[7:].strip())
        if token is None:
            return Denied(
                401,
                f"missing or unknown bearer token: {operation} needs "
                f"'Authorization: Bearer <token>' with scope '{scope}'",
            )
        if scope not in token.scopes:
            return Denied(403, f"this token lacks scope '{scope}' (needed for {operation})")
        return None


def header(headers: list[tuple[bytes, bytes]], name: bytes = AUTHORIZATION) -> bytes | None:
    """A header's raw value from ASGI headers (names are lower case there)."""
    for key, value in headers:
        if key == name:
            return value
    return None


def _parse_entry(entry: str, position: int) -> Token:
    name, _, rest = entry.partition(":")
    scopes_text, _, secret = rest.partition(":")
    name = name.strip()
    where = f"API_TOKENS entry {position} ('{name}')" if name else f"API_TOKENS entry {position}"
    if not _NAME.fullmatch(name):
        raise TokenConfigError(f"{where}: the name must be 1-64 of A-Z a-z 0-9 _ . -")
    scopes = frozenset(s.strip() for s in scopes_text.split(",") if s.strip())
    unknown = sorted(scopes - set(SCOPES))
    if not scopes or unknown:
        raise TokenConfigError(
            f"{where}: unknown or missing scopes {unknown}; use some of {list(SCOPES)} "
            "as <name>:<scope>[,<scope>...]:<token>"
        )
    secret = secret.strip()
    if not secret:
        raise TokenConfigError(f"{where}: the token is empty")
    if not _TOKEN.fullmatch(secret):
        raise TokenConfigError(f"{where}: the token must be printable ASCII without spaces")
    return Token(name, scopes, secret.encode())
