"""The load driver: `wrk` runs on byte-identical bodies, parsed into `Run`s, and their medians.

`post.lua` makes wrk POST the body named by `WRK_BODY` and print its summary as one
`WRK_JSON {...}` line (requests, duration, p50/p99 latency, non-2xx answers, socket errors).
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
from dataclasses import dataclass
from pathlib import Path

import httpx
from processes import pinned

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Target:
    label: str
    url: str  # POST endpoint


@dataclass(frozen=True)
class Run:
    target: str
    concurrency: int
    batch: int
    rps: float
    p50_ms: float
    p99_ms: float
    failures: int
    rps_min: float | None = None  # over the repeated runs this row summarizes
    rps_max: float | None = None

    @property
    def images_per_s(self) -> float:
        return self.rps * self.batch


def wrk(
    url: str, body: Path, concurrency: int, seconds: int, label: str, batch: int,
    content_type: str = "application/json",
) -> Run:  # fmt: skip
    args = pinned("1", ["wrk", "-t1", f"-c{concurrency}", f"-d{int(seconds)}s", "--latency",
                        "-s", str(HERE / "post.lua"), url])  # fmt: skip
    env = {**os.environ, "WRK_BODY": str(body), "WRK_CONTENT_TYPE": content_type}
    out = subprocess.run(args, env=env, capture_output=True, text=True, check=True).stdout
    match = re.search(r"WRK_JSON (\{.*\})", out)
    if not match:
        raise RuntimeError(f"wrk printed no summary:\n{out}")
    s = json.loads(match.group(1))
    return Run(
        target=label,
        concurrency=concurrency,
        batch=batch,
        rps=s["requests"] / (s["duration_us"] / 1e6),
        p50_ms=s["p50_us"] / 1000,
        p99_ms=s["p99_us"] / 1000,
        failures=s["non2xx"] + s["socket_errors"],
    )


def check_answers(targets: list[Target], bodies: dict[int, Path]) -> None:
    """Refuse to benchmark endpoints that do not actually answer the payload."""
    for t in targets:
        r = httpx.post(t.url, content=bodies[1].read_bytes(),
                       headers={"content-type": "application/json"}, timeout=30)  # fmt: skip
        if r.status_code != 200:
            raise RuntimeError(f"{t.label} answered {r.status_code}: {r.text[:300]}")


def median_run(runs: list[Run]) -> Run:
    """One row for repeated runs of a setting: medians, summed failures, req/s range."""
    first = runs[0]
    return Run(
        target=first.target,
        concurrency=first.concurrency,
        batch=first.batch,
        rps=statistics.median(r.rps for r in runs),
        p50_ms=statistics.median(r.p50_ms for r in runs),
        p99_ms=statistics.median(r.p99_ms for r in runs),
        failures=sum(r.failures for r in runs),
        rps_min=min(r.rps for r in runs),
        rps_max=max(r.rps for r in runs),
    )
