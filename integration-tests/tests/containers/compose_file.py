"""docker-compose.yml read the way Compose reads it, for the container suite to start.

The compose file is the one description of the container stack: the suite builds every
container from it (image, environment, command, volumes, user, healthcheck, init, restart
policy, start order from `depends_on`) and overrides only names and host ports. Variables are
interpolated like Compose does (`${VAR}`, `${VAR:-default}`, `${VAR-default}`,
`${VAR:?error}`, `${VAR?error}`, `$$` for a literal `$`), from the values the suite passes in
place of `.env`. A key this reader does not understand fails loudly instead of being
ignored, so the suite never runs something other than what compose describes.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

# Keys of a service this reader turns into container settings; `build` is what
# scripts/build_images.sh builds (its tags arrive as the *_IMAGE variables).
SUPPORTED_KEYS = frozenset(
    {
        "image",
        "build",
        "init",
        "restart",
        "environment",
        "command",
        "volumes",
        "ports",
        "depends_on",
        "healthcheck",
        "profiles",
        "stop_grace_period",
        "user",
        "shm_size",
    }
)
_VARIABLE = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\})"
)
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNITS = {"ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


class ComposeError(ValueError):
    """The compose file asks for something missing or something this reader cannot do."""


def interpolate(value: str, variables: dict[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        name, op, arg = match["name"], match["op"], match["arg"] or ""
        present = variables.get(name)
        unset_or_empty = not present
        if op in (":-", "-"):
            missing = unset_or_empty if op == ":-" else present is None
            return arg if missing else str(present)
        if op in (":?", "?"):
            missing = unset_or_empty if op == ":?" else present is None
            if missing:
                raise ComposeError(f"variable {name} is required: {arg}")
        return present or ""

    return _VARIABLE.sub(replace, value)


def _interpolated(node: Any, variables: dict[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, variables)
    if isinstance(node, list):
        return [_interpolated(item, variables) for item in node]
    if isinstance(node, dict):
        return {key: _interpolated(value, variables) for key, value in node.items()}
    return node


def seconds(duration: str) -> float:
    """A Compose duration ("1m30s", "300s", "500ms") in seconds."""
    parts = _DURATION.findall(duration)
    if not parts or "".join(a + u for a, u in parts) != duration:
        raise ComposeError(f"not a duration: {duration!r}")
    return sum(float(amount) * _UNITS[unit] for amount, unit in parts)


@dataclass(frozen=True)
class Port:
    host_ip: str
    host_port: str | None
    container_port: int

    @classmethod
    def parse(cls, text: str) -> Port:
        *host, container = str(text).split(":")
        if len(host) == 2:
            return cls(host[0], host[1] or None, int(container))
        raise ComposeError(f"port {text!r}: publish as HOST_IP:HOST_PORT:PORT (an address)")


@dataclass(frozen=True)
class Mount:
    source: str  # a named volume, or an absolute host path for a bind mount
    target: str
    mode: str
    named: bool


@dataclass(frozen=True)
class Service:
    """One service of the compose file, with every variable resolved."""

    name: str
    image: str
    environment: dict[str, str]
    command: list[str] | None
    ports: list[Port]
    mounts: list[Mount]
    depends_on: dict[str, str]  # service -> condition
    healthcheck: dict[str, Any] | None  # docker-py's `healthcheck=`; None: the image's own
    init: bool
    restart: str
    stop_grace_seconds: float = 10.0  # Compose's default
    profiles: list[str] = field(default_factory=list)
    user: str | None = None  # None: the image's USER
    shm_size: str | None = None  # None: Docker's default /dev/shm (64 MB)

    @property
    def one_shot(self) -> bool:
        return self.restart == "no"


def _environment(raw: Any) -> dict[str, str]:
    if isinstance(raw, list):
        pairs = (item.split("=", 1) for item in raw)
        return {key: value for key, value in pairs}
    return {key: "" if value is None else str(value) for key, value in (raw or {}).items()}


def _healthcheck(raw: dict[str, Any] | None) -> dict[str, Any] | None:
    """docker-py's healthcheck dict; fields left out are taken from the image's HEALTHCHECK."""
    if raw is None:
        return None
    if raw.get("disable"):
        return {"test": ["NONE"]}
    check: dict[str, Any] = {}
    if "test" in raw:
        test = raw["test"]
        check["test"] = ["CMD-SHELL", test] if isinstance(test, str) else list(test)
    for key in ("interval", "timeout", "start_period"):
        if key in raw:
            check[key] = int(seconds(str(raw[key])) * 1e9)
    if "retries" in raw:
        check["retries"] = int(raw["retries"])
    return check


def _mount(text: str, base: Path) -> Mount:
    source, target, *rest = text.split(":")
    mode = rest[0] if rest else "rw"
    if source.startswith((".", "/")):
        return Mount(str((base / source).resolve()), target, mode, named=False)
    return Mount(source, target, mode, named=True)


def _service(name: str, raw: dict[str, Any], base: Path) -> Service:
    unknown = set(raw) - SUPPORTED_KEYS
    if unknown:
        raise ComposeError(f"service {name}: the container suite cannot apply {sorted(unknown)}")
    command = raw.get("command")
    depends = raw.get("depends_on") or {}
    if isinstance(depends, list):
        depends = {dep: {"condition": "service_started"} for dep in depends}
    return Service(
        name=name,
        image=raw["image"],
        environment=_environment(raw.get("environment")),
        command=shlex.split(command) if isinstance(command, str) else command,
        ports=[Port.parse(port) for port in raw.get("ports", [])],
        mounts=[_mount(volume, base) for volume in raw.get("volumes", [])],
        depends_on={dep: spec.get("condition", "service_started") for dep, spec in depends.items()},
        healthcheck=_healthcheck(raw.get("healthcheck")),
        init=bool(raw.get("init", False)),
        restart=str(raw.get("restart", "no")),
        stop_grace_seconds=seconds(str(raw.get("stop_grace_period", "10s"))),
        profiles=list(raw.get("profiles", [])),
        user=str(raw["user"]) if "user" in raw else None,
        shm_size=str(raw["shm_size"]) if "shm_size" in raw else None,
    )


def load(path: Path, variables: dict[str, str], profiles: tuple[str, ...] = ()) -> list[Service]:
    """The services of the default profile (plus `profiles`), in the file's order."""
    document = _interpolated(yaml.safe_load(path.read_text()), variables)
    services = [
        _service(name, raw, path.parent) for name, raw in document.get("services", {}).items()
    ]
    return [s for s in services if not s.profiles or set(s.profiles) & set(profiles)]


def env_file_keys(path: Path) -> list[str]:
    """The keys a `.env` for this compose file sets (from `.env.example`), commented or not."""
    keys = []
    for line in path.read_text().splitlines():
        match = re.match(r"^#?\s*([A-Z][A-Z0-9_]*)=", line)
        if match:
            keys.append(match[1])
    return keys
