"""Token settings: API_TOKENS parsing, `*_FILE` secrets, start-up refusals that never show a
token, the Host and body-size settings."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError
from test_config import start_with

from training_service.auth import TokenConfigError, Tokens
from training_service.config import Settings

SECRET = "s3cret-value-never-shown"


def test_api_tokens_name_scopes_and_api_token_holds_every_scope() -> None:
    tokens = Tokens.parse("all", f"orchestrator:train,admin:{SECRET};\nreader : train : r-1")
    described = "api_token (admin,train), orchestrator (admin,train), reader (train)"
    assert tokens.describe() == described
    assert tokens.check(b"Bearer " + SECRET.encode(), "admin", "POST /x") is None
    refusal = tokens.check(b"bearer r-1", "admin", "POST /v1/jobs/j/cancel")
    assert refusal is not None and refusal.status == 403
    assert refusal.detail == "this token lacks scope 'admin' (needed for POST /v1/jobs/j/cancel)"


@pytest.mark.parametrize(
    "authorization",
    [None, b"", b"Bearer", b"Bearer wrong", b"Basic " + SECRET.encode(), "Bearer tökén".encode()],
)
def test_anything_but_a_configured_token_is_401(authorization: bytes | None) -> None:
    refusal = Tokens.parse(None, f"o:train:{SECRET}").check(authorization, "train", "POST /x")
    assert refusal is not None and refusal.status == 401
    assert refusal.headers == {"WWW-Authenticate": "Bearer"}


def test_no_token_configured_is_open() -> None:
    assert Tokens.parse(None, " ; ").empty
    assert Tokens.parse(None, None).check(None, "admin", "POST /x") is None


@pytest.mark.parametrize(
    ("api_tokens", "expected"),
    [
        (SECRET, "entry 1: write <name>:<scope>"),  # a bare token: never echoed
        (f"a:train:{SECRET};a:admin:other", "names 'a' more than once"),
        (f"api_token:train:{SECRET}", "names 'api_token' more than once"),
        (f"a:predict:{SECRET}", "entry 1 ('a'): unknown or missing scopes ['predict']"),
        ("a:train:", "entry 1 ('a'): the token is empty"),
        (f"a:train:{SECRET};b:train:tök", "entry 2 ('b'): the token must be printable ASCII"),
        (f"bad name:train:{SECRET}", "entry 1: write <name>"),
    ],
)
def test_malformed_api_tokens_name_the_entry_never_the_token(
    api_tokens: str, expected: str
) -> None:
    with pytest.raises(TokenConfigError) as caught:
        Tokens.parse("t" if "api_token" in api_tokens else None, api_tokens)
    assert expected in str(caught.value)
    assert SECRET not in str(caught.value)


def test_secrets_come_from_files_with_the_trailing_newline_stripped(tmp_path: Path) -> None:
    (tmp_path / "token").write_text(SECRET + "\n")
    (tmp_path / "tokens").write_text(f"orchestrator:train,admin:{SECRET}-2\n")
    (tmp_path / "mlflow").write_text("mlflow-pw\r\n")
    settings = Settings(
        api_token_file=tmp_path / "token",
        api_tokens_file=tmp_path / "tokens",
        mlflow_tracking_password_file=tmp_path / "mlflow",
    )
    assert settings.token == SECRET
    assert settings.tokens().find(f"{SECRET}-2".encode()) is not None
    assert settings.mlflow_tracking_password is not None
    assert settings.mlflow_tracking_password.get_secret_value() == "mlflow-pw"


def test_a_secret_and_its_file_together_are_refused(tmp_path: Path) -> None:
    (tmp_path / "token").write_text(SECRET)
    with pytest.raises(ValidationError, match="both API_TOKEN and API_TOKEN_FILE are set"):
        Settings(api_token="x", api_token_file=tmp_path / "token")
    with pytest.raises(ValidationError, match="API_TOKENS_FILE=.* cannot be read"):
        Settings(api_token="x", api_tokens_file=tmp_path / "missing")


def test_the_service_refuses_to_start_on_a_bad_entry_without_printing_it() -> None:
    result = start_with(ENVIRONMENT="production", API_TOKENS=f"ci:deploy:{SECRET}")
    assert result.returncode == 2
    assert "API_TOKENS entry 1 ('ci'): unknown or missing scopes ['deploy']" in result.stderr
    assert SECRET not in result.stderr + result.stdout


def test_api_tokens_alone_is_enough_outside_local() -> None:
    settings = Settings(environment="production", api_tokens=f"o:train:{SECRET}")
    assert settings.token is None and not settings.tokens().empty


def test_allowed_hosts_and_body_cap_settings() -> None:
    assert Settings(api_token="t").host_names() is None  # default "*": every name
    names = Settings(api_token="t", allowed_hosts="proxy, Training ,localhost").host_names()
    assert names == frozenset({"proxy", "training", "localhost"})
    assert Settings(api_token="t").max_body_bytes == 1 << 20
    with pytest.raises(ValidationError, match="max_body_bytes"):
        Settings(api_token="t", max_body_bytes=10)
