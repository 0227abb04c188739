"""Prometheus in the embedded stack: the repository's scrape config, local targets.

`infra/prometheus/prometheus.yml` finds its targets through `file_sd_configs` files,
`targets/<job>.json` relative to the config. The embedded stack copies the config and its
`rules/` (not the committed compose targets) to `<state>/prometheus/` and writes its own
target files there, naming the services on 127.0.0.1: the same scrape
configuration as the container stack, other addresses.

Prometheus is optional: the stack starts it only when a `prometheus` binary is on PATH
(Debian's package) and the config exists.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

TARGET_FILE = re.compile(r"""["']?targets/([A-Za-z0-9_.-]+)\.json["']?""")


def skip_reason(binary: str | None, config: Path) -> str | None:
    """Why Prometheus cannot be part of the stack here, or None when it can."""
    if binary is None:
        return "no `prometheus` on PATH (Debian: apt-get install prometheus)"
    if not config.exists():
        return f"no scrape config at {config}"
    return None


def target_jobs(config_text: str) -> list[str]:
    """The jobs whose `targets/<job>.json` file the config reads, in order of appearance."""
    return list(dict.fromkeys(TARGET_FILE.findall(config_text)))


def write_config(config: Path, dest: Path, ports: dict[str, int]) -> Path:
    """Copy the config folder to `dest` and write one target file per job it reads.

    `ports` maps a job name to the local port of its service; a job of the config that the
    embedded stack does not run gets an empty target list, so Prometheus has nothing to
    scrape there instead of an error about a missing file.
    """
    dest.mkdir(parents=True, exist_ok=True)
    local_config = dest / config.name
    shutil.copyfile(config, local_config)
    # The config loads `rules/*.yml` beside it: copy them afresh (a deleted rule stays deleted).
    shutil.rmtree(dest / "rules", ignore_errors=True)
    if (config.parent / "rules").is_dir():
        shutil.copytree(config.parent / "rules", dest / "rules")
    targets = dest / "targets"
    targets.mkdir(exist_ok=True)
    for job in target_jobs(local_config.read_text()):
        port = ports.get(job)
        groups = [{"targets": [f"127.0.0.1:{port}"]}] if port else []
        tmp = targets / f".{job}.json.tmp"
        tmp.write_text(json.dumps(groups, indent=2) + "\n")
        # Prometheus watches these files: a rename is never seen half-written.
        os.replace(tmp, targets / f"{job}.json")
    return local_config
