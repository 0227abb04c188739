"""Security rules for docker-compose.yml, which checkov has no framework for.

`python -m scripts.security.compose_policy [FILE ...]` (run by `make security`) prints one
line per finding and exits 1 when a rule is broken:

- ports: every published port is bound to 127.0.0.1 (the TLS proxy or an SSH tunnel is the
  way in from elsewhere);
- host: no service is privileged, adds all or SYS_ADMIN capabilities, or shares the host's
  network, PID or IPC namespace;
- docker.sock: no service mounts a container engine's socket (that is root on the host);
- secrets: a variable whose name says secret (password, token, key, ...) is required,
  `${VAR:?message}`, never given a default, and no secret-named setting holds a literal
  (a `*_FILE` setting names a file and is fine);
- images: each is one of ours (`mlops/...`, built by `make images`) or an upstream image
  pinned to a version tag or a digest, never `latest` or untagged.

Advice, printed without failing unless `--strict`: services without `read_only: true`,
`cap_drop: [ALL]` or `security_opt: [no-new-privileges:true]`.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
SECRET_NAME = re.compile(r"PASSWORD|PASSWD|SECRET|TOKEN|FERNET|PRIVATE|API_KEY|_KEY$|CREDENTIAL")
# `$$` is a literal dollar; `${NAME<op>arg}` or `$NAME` a variable (Compose's syntax).
VARIABLE = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<name>[A-Za-z_]\w*)(?P<op>:?[-?+])?(?P<arg>[^}]*)\}"
    r"|(?P<bare>[A-Za-z_]\w*))"
)
LOOPBACK = "127.0.0.1"
HOST_IP = re.compile(r"^(?P<ip>\d{1,3}(?:\.\d{1,3}){3}|\[[0-9A-Fa-f:]+\]):")
SOCKETS = ("docker.sock", "containerd.sock", "podman.sock")
HOST_NAMESPACES = ("network_mode", "pid", "ipc")
DANGEROUS_CAPS = {"ALL", "SYS_ADMIN"}
OUR_IMAGES = "mlops/"


@dataclass
class Report:
    errors: list[str] = field(default_factory=list)
    advice: list[str] = field(default_factory=list)


def _strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from _strings(key)
            yield from _strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from _strings(item)


def _default(value: str) -> str:
    """A string as Compose would read it with nothing set but defaults (`${X:-d}` -> d)."""

    def replace(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        return match["arg"] if match["op"] in (":-", "-") else ""

    return VARIABLE.sub(replace, value)


def _environment(service: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        for item in env:
            key, sep, value = str(item).partition("=")
            yield key, value if sep else None
    else:
        yield from env.items()


def check_secrets(document: dict[str, Any], report: Report) -> None:
    """Secret variables are required (`:?`); secret-named settings hold no literal."""
    for text in _strings(document):
        for match in VARIABLE.finditer(text):
            name = match["name"] or match["bare"]
            if not name or not SECRET_NAME.search(name) or name.endswith("_FILE"):
                continue
            if match["op"] != ":?":
                report.errors.append(
                    f"secret variable {name} in {text!r} must be required: write "
                    f"${{{name}:?set it in .env}} (no default, never empty)"
                )
    for svc, service in _services(document):
        for key, value in _environment(service):
            if not SECRET_NAME.search(key) or key.endswith("_FILE") or value in (None, ""):
                continue
            if not VARIABLE.search(str(value).replace("$$", "")):
                report.errors.append(
                    f"service {svc!r}: {key} holds a literal secret; "
                    f"write {key}: ${{{key}:?set it in .env}} or mount a file ({key}_FILE)"
                )


def _services(document: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, service in (document.get("services") or {}).items():
        yield name, service or {}


def check_ports(svc: str, service: dict[str, Any], report: Report) -> None:
    for port in service.get("ports") or []:
        if isinstance(port, dict):
            ip = port.get("host_ip")
            shown = f"{ip or ''}:{port.get('published', '')}:{port.get('target', '')}"
        else:
            found = HOST_IP.match(_default(str(port)))
            ip, shown = (found["ip"] if found else None), str(port)
        if ip != LOOPBACK:
            report.errors.append(
                f"service {svc!r}: port {shown!r} is published on {_interface(ip)}; "
                f"bind it to {LOOPBACK} ({LOOPBACK}:<host port>:<container port>)"
            )


def _interface(ip: str | None) -> str:
    with contextlib.suppress(ValueError):
        if ip is None or ipaddress.ip_address(ip.strip("[]")).is_unspecified:
            return "all interfaces"
    return str(ip)


def check_host_access(svc: str, service: dict[str, Any], report: Report) -> None:
    if service.get("privileged"):
        report.errors.append(f"service {svc!r}: privileged: true gives it the host; remove it")
    for key in HOST_NAMESPACES:
        if str(service.get(key, "")).startswith("host"):
            report.errors.append(f"service {svc!r}: {key}: host shares the host's namespace")
    added = {str(cap).upper().removeprefix("CAP_") for cap in service.get("cap_add") or []}
    for cap in sorted(added & DANGEROUS_CAPS):
        report.errors.append(f"service {svc!r}: cap_add {cap} is root on the host; remove it")
    for volume in service.get("volumes") or []:
        text = " ".join(map(str, volume.values())) if isinstance(volume, dict) else str(volume)
        if any(sock in text for sock in SOCKETS):
            report.errors.append(
                f"service {svc!r}: volume {text!r} mounts a container engine's socket, "
                "which is root on the host; remove it"
            )


def check_image(svc: str, service: dict[str, Any], report: Report) -> None:
    image = service.get("image")
    if image is None:
        if "build" not in service:
            report.errors.append(f"service {svc!r} has neither image nor build")
        return
    resolved = _default(str(image))
    if not resolved or resolved.startswith(OUR_IMAGES):
        return  # required from .env (`${X_IMAGE:?}`), or ours, tagged by `make images`
    name, _, digest = resolved.partition("@")
    tag = name.rsplit("/", 1)[-1].partition(":")[2]
    if not digest and tag in ("", "latest"):
        report.errors.append(
            f"service {svc!r}: image {resolved!r} is not pinned; name a version tag "
            "(or a digest), never latest"
        )


def advise_hardening(svc: str, service: dict[str, Any], report: Report) -> None:
    missing = []
    if service.get("read_only") is not True:
        missing.append("read_only: true")
    if "ALL" not in {str(cap).upper() for cap in service.get("cap_drop") or []}:
        missing.append("cap_drop: [ALL]")
    options = {str(opt).replace("=", ":") for opt in service.get("security_opt") or []}
    if not options & {"no-new-privileges:true", "no-new-privileges"}:
        missing.append("security_opt: [no-new-privileges:true]")
    if missing:
        report.advice.append(f"service {svc!r} could add {', '.join(missing)}")


def check(document: dict[str, Any]) -> Report:
    """Every rule over one parsed compose document (YAML anchors and merges resolved)."""
    report = Report()
    check_secrets(document, report)
    for svc, service in _services(document):
        check_ports(svc, service, report)
        check_host_access(svc, service, report)
        check_image(svc, service, report)
        advise_hardening(svc, service, report)
    return report


def check_file(path: Path) -> Report:
    document = yaml.safe_load(path.read_text())
    if not isinstance(document, dict) or not isinstance(document.get("services"), dict):
        return Report(errors=[f"{path}: no services: is this a compose file?"])
    return check(document)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="*", type=Path, default=[ROOT / "docker-compose.yml"])
    parser.add_argument("--strict", action="store_true", help="advice fails too")
    args = parser.parse_args(argv)
    failed = False
    for path in args.files:
        report = check_file(path)
        for line in report.errors:
            print(f"{path}: error: {line}")
        for line in report.advice:
            print(f"{path}: advice: {line}")
        bad = bool(report.errors) or (args.strict and bool(report.advice))
        failed |= bad
        print(
            f"{path}: {len(report.errors)} error(s), {len(report.advice)} advice "
            f"({'failed' if bad else 'passed'})"
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
