"""The benchmark report: the machine, the command, the model's provenance, whether the
servers agreed, the table of runs and the speed ratios.

The ratio to the raw-ASGI constant is the service's own overhead (same ASGI path, same
uvicorn settings, no work); the ratios to `mlflow models serve` and to the constant FastAPI
endpoint are the older columns, kept for comparison with earlier runs.
"""

from __future__ import annotations

import os
import platform
import sys
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


OURS = "serving-service /v1/predict"
RATIOS = (  # column title, the server divided by, format
    ("/ constant raw ASGI (own overhead)", "constant raw ASGI", "{:.2f}"),
    ("/ mlflow models serve", "mlflow models serve", "{:.1f}x"),
    ("/ constant FastAPI", "constant FastAPI", "{:.2f}"),
)


def ratios(runs: list[Run]) -> str:
    """Requests/s of this service's /v1/predict over each other server's, per setting."""
    by = {(r.target, r.concurrency, r.batch): r for r in runs}
    lines = [
        f"| concurrency | batch | {OURS} req/s " + " | ".join(t for t, _, _ in RATIOS) + " |",
        "|---:|---:|" + "---:|" * len(RATIOS),
    ]
    for (target, c, b), r in by.items():
        if target != OURS:
            continue
        cells = []
        for _, other, fmt in RATIOS:
            o = by.get((other, c, b))
            cells.append(fmt.format(r.rps / o.rps) if o and o.rps else "n/a")
        lines.append(f"| {c} | {b} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def report(
    runs: list[Run],
    *,
    duration: int,
    repeat: int,
    workers: str,
    load_before: tuple[float, float, float],
    load_after: tuple[float, float, float],
    notes: list[str],
) -> str:
    """The markdown printed and written to results.md; `runs` in table order."""
    cpu = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")), platform.processor(),
    )  # fmt: skip
    loaded = max(load_before[0], load_after[0]) > 1.5
    shared = "other jobs loaded the machine" if loaded else "an otherwise quiet machine"
    return "\n\n".join([
        f"Hardware: {os.cpu_count()} cores ({cpu}), {platform.system()} {platform.release()}; "
        f"servers pinned to core 0 with {workers} worker(s) each, wrk (1 thread) pinned to "
        f"core 1; {duration:g} s per run, median of {repeat} runs per row, the servers "
        f"measured in turn. Load average (1 min) before/after: "
        f"{load_before[0]:.1f}/{load_after[0]:.1f} ({shared}).",
        f"Command: `{' '.join(['python', 'benchmarks/bench.py', *sys.argv[1:]])}`",
        *notes,
        table(runs),
        ratios(runs),
    ])  # fmt: skip
