"""The benchmark report: the machine and the command, the table of runs, the speed ratios."""

from __future__ import annotations

import os
import platform
from pathlib import Path

from wrk_load import Run


def table(runs: list[Run]) -> str:
    lines = [
        "| server | concurrency | batch | requests/s | req/s range | images/s | p50 ms | p99 ms "
        "| failed |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in runs:
        spread = f"{r.rps_min:,.0f}-{r.rps_max:,.0f}" if r.rps_min is not None else ""
        lines.append(
            f"| {r.target} | {r.concurrency} | {r.batch} | {r.rps:,.0f} | {spread}"
            f" | {r.images_per_s:,.0f} | {r.p50_ms:.2f} | {r.p99_ms:.2f} | {r.failures} |"
        )
    return "\n".join(lines)


def ratios(runs: list[Run], ours: str, theirs: str, constant: str) -> str:
    by = {(r.target, r.concurrency, r.batch): r for r in runs}
    lines = [
        f"| concurrency | batch | {ours} / mlflow serve (req/s) | {ours} / constant (req/s) |",
        "|---:|---:|---:|---:|",
    ]
    for (target, c, b), r in by.items():
        if target != ours:
            continue
        m, k = by.get((theirs, c, b)), by.get((constant, c, b))
        vs_m = f"{r.rps / m.rps:.1f}x" if m and m.rps else "n/a"
        vs_k = f"{r.rps / k.rps:.2f}" if k and k.rps else "n/a"
        lines.append(f"| {c} | {b} | {vs_m} | {vs_k} |")
    return "\n".join(lines)


def report(
    runs: list[Run],
    *,
    duration: int,
    repeat: int,
    workers: str,
    load_before: tuple[float, float, float],
    load_after: tuple[float, float, float],
) -> str:
    """The markdown printed and written to results.md; `runs` in table order."""
    cpu = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")), platform.processor(),
    )  # fmt: skip
    return "\n\n".join([
        f"Hardware: {os.cpu_count()} cores ({cpu}), {platform.system()} {platform.release()}; "
        f"servers pinned to core 0 with {workers} worker(s) each, wrk (1 thread) pinned to "
        f"core 1; {duration:g} s per run, median of {repeat} runs per row, the servers "
        f"measured in turn. Load average before/after: "
        f"{load_before[0]:.1f}/{load_after[0]:.1f} (other jobs shared the machine).",
        f"Command: `make bench` (= `python benchmarks/bench.py --duration {duration:g} "
        f"--repeat {repeat} --workers {workers}`)",
        table(runs),
        ratios(runs, "serving-service /v1/predict", "mlflow models serve", "constant FastAPI"),
    ])  # fmt: skip
