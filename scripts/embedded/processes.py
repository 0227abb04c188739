"""Processes of the embedded stack: pid files, logs, spawning, stopping, probes.

Each process is started in a session of its own and its pid written to `<home>/pids`, so
that stopping signals exactly the process group this stack started, by the pid it wrote,
and nothing else. Its output goes to `<home>/logs/<name>.log`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from .components import Component


class ProcessTable:
    """The pid and log files of the stack's processes, and the processes behind them."""

    def __init__(self, home: Path) -> None:
        self.pids = home / "pids"
        self.logs = home / "logs"

    def pid_of(self, name: str) -> int | None:
        """The pid written for a component, if that process is still alive."""
        path = self.pids / f"{name}.pid"
        if not path.exists():
            return None
        pid = int(path.read_text().strip() or 0)
        if pid <= 0 or not alive(pid):
            path.unlink(missing_ok=True)
            return None
        return pid

    def log_path(self, name: str) -> Path:
        return self.logs / f"{name}.log"

    def recorded_names(self) -> list[str]:
        """Every name with a pid file, running or not."""
        return sorted(p.stem for p in self.pids.glob("*.pid")) if self.pids.exists() else []

    def spawn(self, comp: Component) -> int:
        """Start a component in a session of its own; its output goes to its log file."""
        self.logs.mkdir(parents=True, exist_ok=True)
        self.pids.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **comp.env}
        with self.log_path(comp.name).open("ab") as log:
            log.write(f"\n--- started {time.strftime('%Y-%m-%dT%H:%M:%S')} ---\n".encode())
            # argv is a Component's, built by components.py from our own paths and settings.
            proc = subprocess.Popen(  # noqa: S603
                comp.argv,
                cwd=comp.cwd,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        (self.pids / f"{comp.name}.pid").write_text(str(proc.pid))
        return proc.pid

    def stop(self, names: list[str], grace: float) -> list[str]:
        """SIGTERM the running groups among `names` in order, SIGKILL after grace.

        Returns the names that were running.
        """
        running = {n: p for n in names if (p := self.pid_of(n)) is not None}
        for name, pid in running.items():
            signal_group(pid, signal.SIGTERM)
            print(f"  {name:<22} stopping (pid {pid})")
        deadline = time.monotonic() + grace
        for name, pid in running.items():
            while alive(pid) and time.monotonic() < deadline:
                time.sleep(0.2)
            if alive(pid):
                signal_group(pid, signal.SIGKILL)
            (self.pids / f"{name}.pid").unlink(missing_ok=True)
        return list(running)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, but not ours: treat as running so that we never reuse its port
    # A zombie child of ours counts as gone.
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    except ChildProcessError:
        return True


def signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, sig)


def port_in_use(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def http_ok(url: str, timeout: float = 2.0) -> bool:
    try:
        # Health URLs are StackConfig's own http://127.0.0.1:<port>/... (no file: scheme).
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310
            return bool(200 <= resp.status < 300)
    except (urllib.error.URLError, OSError):
        return False


def tail(path: Path, lines: int) -> str:
    if not path.exists():
        return f"(no log at {path})"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
