"""Start `mlflow server --app-name basic-auth` with this project's auth config.

`python -m mlops_mlflow_auth.launch [mlflow server options...]`:

1. secrets given as files (`MLFLOW_AUTH_ADMIN_PASSWORD_FILE`,
   `MLFLOW_FLASK_SERVER_SECRET_KEY_FILE`) are read into the variables MLflow reads;
2. the auth config file is written to MLFLOW_AUTH_CONFIG_PATH: users database
   MLFLOW_AUTH_DATABASE_URI, default permission READ, our authorization function (plugin.py),
   good logins cached per worker for 60 s;
3. with MLFLOW_AUTH_BOOTSTRAP=true, `bootstrap` runs in a detached process once the server
   answers, and touches MLFLOW_AUTH_READY_FILE when the users exist (the image's healthcheck
   waits for that file);
4. the process becomes `mlflow server` (exec), so signals reach it directly.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from . import identities as ids

AUTHORIZATION_FUNCTION = "mlops_mlflow_auth.plugin:authenticate_and_authorize"


def auth_config_text(database_uri: str) -> str:
    """The basic-auth app's config file (configparser: a literal % is written %%)."""
    return (
        "[mlflow]\n"
        "default_permission = READ\n"
        f"database_uri = {database_uri.replace('%', '%%')}\n"
        f"admin_username = {ids.ADMIN}\n"
        f"authorization_function = {AUTHORIZATION_FUNCTION}\n"
        "grant_default_workspace_access = false\n"
        # A password check is a PBKDF2 hash (~0.3 CPU-s); a worker remembers a good login
        # for a minute instead of hashing on every call (a rotated password on another worker
        # is refused within that minute; bootstrap runs at start, so this never shows).
        "auth_cache_ttl_seconds = 60\n"
    )


def write_auth_config(path: Path, database_uri: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(auth_config_text(database_uri))
    path.chmod(0o600)


def _bootstrap_detached(ready: Path | None) -> None:
    """Run the bootstrap in a grandchild (reaped by init), so the server can be exec'd now."""
    if os.fork() != 0:
        os.wait()
        return
    if os.fork() != 0:
        os._exit(0)
    from .bootstrap import main as bootstrap_main

    code = bootstrap_main(["--wait", os.environ.get("MLFLOW_AUTH_BOOTSTRAP_WAIT", "600")])
    if code == 0 and ready is not None:
        ready.parent.mkdir(parents=True, exist_ok=True)
        ready.touch()
    os._exit(code)


def main(argv: list[str]) -> None:
    for variable in ("MLFLOW_AUTH_ADMIN_PASSWORD", "MLFLOW_FLASK_SERVER_SECRET_KEY"):
        value = ids.secret(variable)
        if value:
            os.environ[variable] = value
    missing = [
        v
        for v in ("MLFLOW_AUTH_ADMIN_PASSWORD", "MLFLOW_FLASK_SERVER_SECRET_KEY")
        if not os.environ.get(v)
    ]
    database_uri = os.environ.get("MLFLOW_AUTH_DATABASE_URI")
    if not database_uri:
        missing.append("MLFLOW_AUTH_DATABASE_URI")
    if missing:
        sys.exit(f"mlflow-auth: set {', '.join(missing)} (or the *_FILE variant of a password)")
    config = Path(
        os.environ.setdefault("MLFLOW_AUTH_CONFIG_PATH", "/tmp/mlflow-auth/basic_auth.ini")
    )
    write_auth_config(config, str(database_uri))
    ready_name = os.environ.get("MLFLOW_AUTH_READY_FILE")
    ready = Path(ready_name) if ready_name else None
    if ready is not None:
        ready.unlink(missing_ok=True)
    if os.environ.get("MLFLOW_AUTH_BOOTSTRAP", "true").lower() == "true":
        _bootstrap_detached(ready)
    os.execvp("mlflow", ["mlflow", "server", "--app-name", "basic-auth", *argv])


if __name__ == "__main__":
    main(sys.argv[1:])
