"""Intake: requests/s of POST /v1/leads served by `leadline intake` (a real uvicorn process on
127.0.0.1) against a bare ASGI endpoint served with the same uvicorn settings, and the p99
latency of POST /v1/leads under an open-loop load at half the measured maximum.

Targets: intake ≥ 50 % of the bare endpoint's requests/s; p99 ≤ 25 ms at half load.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench.loadgen import LoadRequest, LoadResult, max_load, paced_load
from bench.pipeline import lead_body
from bench.setup import LOOPBACK, BenchEnv, cpu_seconds, free_port, wait_until_serving

TARGETS = {"ratio": (">=", 0.50), "p99_ms_at_half_load": ("<=", 25.0)}
MAX_ERROR_RATIO = 0.001
WARMUP_SECONDS = 2.0
REPO_ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Server:
    base: str
    pid: int


@contextmanager
def server(env: BenchEnv, command: list[str], name: str, ready_path: str) -> Iterator[Server]:
    """Start a server subprocess on a free loopback port."""
    port = free_port()
    log = (env.workdir / f"{name}.log").open("wb")
    process = subprocess.Popen(
        [*command, "--host", LOOPBACK, "--port", str(port)],
        env=env.child_environment(),
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=REPO_ROOT,
    )
    base = f"http://{LOOPBACK}:{port}"
    try:
        wait_until_serving(base + ready_path)
        yield Server(base, process.pid)
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def measure(env: BenchEnv, target: Server, request: LoadRequest) -> tuple[LoadResult, float]:
    """Maximum load result and the server's CPU milliseconds per answered request."""
    duration = float(env.option("duration", 10.0))
    connections = int(env.option("connections", 32))
    use_wrk = not env.option("no_wrk", False)
    max_load(request, WARMUP_SECONDS, connections, env.workdir, use_wrk)
    cpu_before = cpu_seconds(target.pid)
    result = max_load(request, duration, connections, env.workdir, use_wrk)
    cpu_ms = (cpu_seconds(target.pid) - cpu_before) * 1000 / max(1, result.ok)
    if result.error_ratio > MAX_ERROR_RATIO:
        raise RuntimeError(f"{request.url}: {result.errors} failed requests of {result.ok}")
    return result, cpu_ms


def run(env: BenchEnv) -> dict[str, float]:
    org = env.make_org()
    workers = str(int(env.option("intake_workers", 1)))
    body = json.dumps(lead_body(1)).encode()
    headers = {"Content-Type": "application/json", **org.auth}
    leadline = [sys.executable, "-m", "leadline", "intake", "--workers", workers]
    bare = [sys.executable, "-m", "bench.bare_asgi", "--workers", workers]

    with server(env, bare, "bare", "/") as target:
        request = LoadRequest(target.base + "/v1/leads", body, headers)
        baseline, bare_cpu_ms = measure(env, target, request)
    with server(env, leadline, "intake", "/healthz") as target:
        request = LoadRequest(target.base + "/v1/leads", body, headers)
        real, intake_cpu_ms = measure(env, target, request)
        half = paced_load(
            request,
            rate=real.requests_per_s / 2,
            duration=float(env.option("duration", 10.0)),
            connections=int(env.option("connections", 32)),
        )
    if half.error_ratio > MAX_ERROR_RATIO:
        raise RuntimeError(f"half load: {half.errors} failed requests of {half.ok}")
    env.note(
        f"max load: {real.generator}, {env.option('connections', 32)} connections, "
        f"{env.option('duration', 10.0):g} s, {workers} uvicorn process(es); half load: "
        f"{half.generator} at {real.requests_per_s / 2:.0f} req/s, latency from due time"
    )
    return {
        "bare_requests_per_s": baseline.requests_per_s,
        "intake_requests_per_s": real.requests_per_s,
        "ratio": real.requests_per_s / baseline.requests_per_s,
        "intake_p99_ms_at_max_load": real.p99_ms,
        "bare_cpu_ms_per_request": bare_cpu_ms,
        "intake_cpu_ms_per_request": intake_cpu_ms,
        "half_load_requests_per_s": half.requests_per_s,
        "p50_ms_at_half_load": half.p50_ms,
        "p99_ms_at_half_load": half.p99_ms,
    }
