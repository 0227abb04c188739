"""Serving behind the scale profile's load balancer: req/s, p99 and CPU per request.

On serving's part of the compose profile `scale` (scale_fixture.py: the digits CNN in
`production`, replicas serving .. serving-4), `wrk` (the host's Debian package, run in a
container on the stack's network so that it reaches the replicas by name) POSTs one held-out
digit per request to `/v1/predict` at a fixed concurrency:

  direct       wrk -> serving:5001, no load balancer
  lb N         wrk -> bench-lb:5001 -> N replicas (N = 1, 2, 4): the image of `lb` with
               infra/haproxy/haproxy.cfg listing N servers instead of two
  client path  wrk on the host -> TLS proxy -> the stack's `lb` -> serving, serving-2: what a
               client of `docker-compose up` goes through

Replicas outside a measurement are paused, so they take no CPU. Each setting runs `--repeat`
times in turn (slow drifts of a shared machine hit them alike); the table shows medians.
CPU per request is the cgroup CPU time the replicas, and the load balancer (with the TLS
proxy on the client path), used during a run divided by its requests. wrk shares the
machine's two cores with everything it measures, as any load generator on one host would.

    make images && cd integration-tests && ../.venvs/integration-tests/bin/python \\
        benchmarks/bench_scale.py [--duration 10] [--repeat 2] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import docker
from scale_fixture import (
    ROOT,
    ScaleStack,
    add_replica,
    promote_digits_model,
    start_serving_stack,
)

REPLICAS = ("serving", "serving-2", "serving-3", "serving-4")
HAPROXY_CFG = ROOT / "infra" / "haproxy" / "haproxy.cfg"
SERVER_LINE = re.compile(
    r"^(?P<indent>\s+)server (?P<name>\S+) (?P<host>serving(?:-2)?):5001(?P<rest>.*)$"
)
WRK_LIBS = ("/usr/bin/wrk", "/lib/x86_64-linux-gnu/libluajit-5.1.so.2")
POST_LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("WRK_TOKEN")
-- Inside the network the replicas accept only their own names (ALLOWED_HOSTS), as from lb.
if os.getenv("WRK_HOST") then wrk.headers["Host"] = os.getenv("WRK_HOST") end
local f = assert(io.open(os.getenv("WRK_BODY"), "rb"))
wrk.body = f:read("*a")
f:close()
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRK_JSON {"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,'
    .. '"failed":%d}\\n', summary.requests, summary.duration, latency:percentile(50),
    latency:percentile(99), e.status + e.connect + e.read + e.write + e.timeout))
end
"""


@dataclass
class Run:
    target: str
    rps: float
    p50_ms: float
    p99_ms: float
    failed: int
    replica_cpu_ms: float  # per request, all replicas together
    lb_cpu_ms: float  # per request: the load balancer (and the TLS proxy on the client path)


def lb_config(replicas: tuple[str, ...]) -> str:
    """infra/haproxy/haproxy.cfg with every serving server line repeated for `replicas`."""
    lines = []
    for line in HAPROXY_CFG.read_text().splitlines():
        match = SERVER_LINE.match(line)
        if not match:
            lines.append(line)
        elif match["host"] == "serving":  # the template; serving-2's lines are replaced
            suffix = match["name"].removeprefix("serving")
            for replica in replicas:
                rest = re.sub(r"/serving(?=\s|$)", f"/{replica}", match["rest"])
                lines.append(f"{match['indent']}server {replica}{suffix} {replica}:5001{rest}")
    return "\n".join(lines) + "\n"


class Bench:
    def __init__(self, stack: ScaleStack, workdir: Path, args: argparse.Namespace) -> None:
        self.stack, self.client, self.workdir, self.args = stack, stack.client, workdir, args
        self.network = stack.network.name
        self.label = {"org.mlops.suite": "containers-e2e"}
        self.lb: docker.models.containers.Container | None = None

    def cpu_ns(self, names: list[str]) -> int:
        total = 0
        for name in names:
            stats = self.client.containers.get(name).stats(stream=False, one_shot=True)
            total += int(stats["cpu_stats"]["cpu_usage"]["total_usage"])
        return total

    def only(self, replicas: tuple[str, ...]) -> None:
        """Unpause `replicas`, pause the other ones."""
        for name in REPLICAS:
            container = self.stack.container(name)
            if name in replicas and container.status == "paused":
                container.unpause()
            elif name not in replicas and container.status == "running":
                container.pause()

    def start_lb(self, replicas: tuple[str, ...]) -> str:
        if self.lb is not None:
            self.lb.remove(force=True)
        config = self.workdir / f"haproxy-{len(replicas)}.cfg"
        config.write_text(lb_config(replicas))
        config.chmod(0o644)
        name = f"mlops-it-{self.stack.session}-bench-lb"
        self.lb = self.client.containers.run(
            self.stack.variables["LB_IMAGE"],
            name=name,
            network=self.network,
            labels=self.label,
            volumes={str(config): {"bind": "/etc/haproxy/mlops.cfg", "mode": "ro"}},
            detach=True,
        )
        return name

    def wrk(self, url: str, seconds: int, on_host: bool = False) -> dict[str, float]:
        env = {"WRK_BODY": str(self.workdir / "body.json"), "WRK_TOKEN": self.args.token}
        if not on_host:
            env["WRK_HOST"] = "serving"
        argv = ["-t1", f"-c{self.args.concurrency}", f"-d{seconds}s", "--latency"]
        argv += ["-s", str(self.workdir / "post.lua"), url]
        if on_host:
            out = subprocess.run(
                ["wrk", *argv], env=env, capture_output=True, text=True, check=True
            ).stdout
        else:
            binds = {path: {"bind": path, "mode": "ro"} for path in WRK_LIBS}
            binds[str(self.workdir)] = {"bind": str(self.workdir), "mode": "ro"}
            container = self.client.containers.run(
                self.stack.variables["SERVING_IMAGE"],
                argv,
                entrypoint=["/usr/bin/wrk"],
                network=self.network,
                environment=env,
                volumes=binds,
                labels=self.label,
                detach=True,
            )
            try:
                container.wait(timeout=seconds + 60)
                out = container.logs().decode()
            finally:
                container.remove(force=True)
        match = re.search(r"WRK_JSON (\{.*\})", out)
        if not match:
            raise RuntimeError(f"wrk printed no summary:\n{out}")
        return dict(json.loads(match.group(1)))

    def measure(
        self, target: str, url: str, replicas: tuple[str, ...], lb: list[str], on_host: bool = False
    ) -> Run:
        self.only(replicas)
        warm = self.wrk(url, 2, on_host)  # connections, caches, health checks settle
        if warm["failed"]:
            raise RuntimeError(f"{target}: {warm['failed']} failed requests while warming up")
        replica_names = [self.stack.container(r).name for r in replicas]
        before = (self.cpu_ns(replica_names), self.cpu_ns(lb))
        summary = self.wrk(url, self.args.duration, on_host)
        after = (self.cpu_ns(replica_names), self.cpu_ns(lb))
        requests = max(summary["requests"], 1)
        return Run(
            target=target,
            rps=summary["requests"] / (summary["duration_us"] / 1e6),
            p50_ms=summary["p50_us"] / 1000,
            p99_ms=summary["p99_us"] / 1000,
            failed=int(summary["failed"]),
            replica_cpu_ms=(after[0] - before[0]) / 1e6 / requests,
            lb_cpu_ms=(after[1] - before[1]) / 1e6 / requests,
        )

    def close(self) -> None:
        """Remove the bench's load balancer and unpause every replica (for a clean removal)."""
        if self.lb is not None:
            self.lb.remove(force=True)
        self.only(REPLICAS)

    def round(self) -> list[Run]:
        runs = [
            self.measure(
                "direct (no load balancer)", "http://serving:5001/v1/predict", REPLICAS[:1], []
            )
        ]
        for count in (1, 2, 4):
            replicas = REPLICAS[:count]
            lb = self.start_lb(replicas)
            time.sleep(5)  # checks every 2 s, rise 1: every server is up
            runs.append(
                self.measure(
                    f"lb, {count} replica(s)", f"http://{lb}:5001/v1/predict", replicas, [lb]
                )
            )
        proxy = [self.stack.container(n).name for n in ("proxy", "lb")]
        runs.append(
            self.measure(
                "client path: TLS proxy + lb, 2 replicas",
                f"{self.stack.url('serving')}/v1/predict",
                REPLICAS[:2],
                proxy,
                on_host=True,
            )
        )
        return runs


def median(runs: list[Run]) -> Run:
    """One row for the repeated runs of a setting: medians, failures summed."""

    def pick(attr: str) -> float:
        return float(statistics.median(getattr(r, attr) for r in runs))

    return Run(
        runs[0].target,
        pick("rps"),
        pick("p50_ms"),
        pick("p99_ms"),
        sum(r.failed for r in runs),
        pick("replica_cpu_ms"),
        pick("lb_cpu_ms"),
    )


def report(rows: list[Run], args: argparse.Namespace) -> str:
    direct = rows[0]
    lines = [
        f"Host: {platform.machine()}, {os.cpu_count()} cores; concurrency {args.concurrency}, "
        f"{args.duration} s per run, median of {args.repeat}; one digit per request.",
        "",
        "| target | req/s | p50 ms | p99 ms | failed | replica CPU ms/req | LB CPU ms/req "
        "| vs direct |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r.target} | {r.rps:,.0f} | {r.p50_ms:.2f} | {r.p99_ms:.2f} | {r.failed} "
            f"| {r.replica_cpu_ms:.3f} | {r.lb_cpu_ms:.3f} | {r.rps / direct.rps:.2f}x |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    if not shutil.which("wrk") or not all(Path(p).exists() for p in WRK_LIBS):
        raise SystemExit("wrk is missing: apt-get install wrk (Debian package)")
    client = docker.from_env(timeout=300)
    stack = start_serving_stack(client)
    workdir = Path(tempfile.mkdtemp(prefix="mlops-bench-scale-"))
    workdir.chmod(0o755)
    try:
        version, instance = promote_digits_model(stack)
        for name in REPLICAS[2:]:
            add_replica(stack, name, version)
        (workdir / "body.json").write_text(json.dumps({"instances": [instance]}))
        (workdir / "post.lua").write_text(POST_LUA)
        for path in workdir.iterdir():
            path.chmod(0o644)
        args.token = stack.variables["CLIENT_TOKEN"]
        bench = Bench(stack, workdir, args)
        try:
            rounds = [bench.round() for _ in range(args.repeat)]
        finally:
            bench.close()
        rows = [median([r[i] for r in rounds]) for i in range(len(rounds[0]))]
        print(report(rows, args))
    finally:
        stack.close()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
