"""Intake: POST /v1/leads served by `leadline intake` against the physical-limit baseline,
the minimal intake (bench/minimal_intake.py: parse, one AES-GCM encrypt, one INSERT + COMMIT,
one LPUSH), and a bare ASGI endpoint (bench/bare_asgi.py) for the framework-free ceiling.

All three are real uvicorn processes with the same server options and process count, loaded
by the same generator (closed loop, 32 connections). Then `leadline intake` alone at half its
own maximum, open loop, for its p99. CPU per request is the server processes' CPU time over
answered requests; round trips per request are counted by proxies on the wire
(bench/roundtrips.py) in a separate, sequential run of each server.

Targets: intake ÷ minimal intake ≥ 0.50 requests/s; p99 ≤ 25 ms at half load.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.loadgen import LoadRequest, LoadResult, max_load, paced_load
from bench.minimal_intake import create_table
from bench.pipeline import lead_body
from bench.roundtrips import RoundTrips, Tally, counting_proxies
from bench.setup import (
    LOOPBACK,
    BenchEnv,
    BenchOrg,
    cpu_seconds,
    default_intake_workers,
    wait_until_serving,
)
from leadline.ports import free_port

TARGETS = {"ratio_to_minimal": (">=", 0.50), "p99_ms_at_half_load": ("<=", 25.0)}
MAX_ERROR_RATIO = 0.001
WARMUP_SECONDS = 2.0
COUNTED_REQUESTS = 200
REPO_ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Server:
    base: str
    pid: int


@contextmanager
def server(
    env: BenchEnv, command: list[str], name: str, ready_path: str, **environment: str
) -> Iterator[Server]:
    """Start a server subprocess on a free loopback port."""
    port = free_port()
    log = (env.workdir / f"{name}.log").open("ab")
    process = subprocess.Popen(
        [*command, "--host", LOOPBACK, "--port", str(port)],
        env=env.child_environment(**environment),
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


@dataclass(frozen=True)
class Measured:
    load: LoadResult
    cpu_ms: float


def measure(env: BenchEnv, target: Server, request: LoadRequest) -> Measured:
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
    return Measured(result, cpu_ms)


def count_round_trips(env: BenchEnv, command: list[str], name: str, ready: str) -> RoundTrips:
    """Sequential requests to a server whose PostgreSQL and Redis traffic is proxied."""
    assert env.settings.leadline_database_url and env.settings.leadline_redis_url
    with counting_proxies(
        env.settings.leadline_database_url, env.settings.leadline_redis_url
    ) as proxies:
        urls = {
            "LEADLINE_DATABASE_URL": proxies.database_url,
            "LEADLINE_REDIS_URL": proxies.redis_url,
        }
        with server(env, command, name, ready, **urls) as target, httpx.Client() as http:
            org = env.make_org()
            tally = Tally(proxies)
            for _phase in ("warm-up", "counted"):
                tally.start()
                for serial in range(COUNTED_REQUESTS):
                    post_lead(http, target, org, serial)
        return tally.per(COUNTED_REQUESTS)


def post_lead(http: httpx.Client, target: Server, org: BenchOrg, serial: int) -> None:
    headers = {"Content-Type": "application/json", **org.auth}
    response = http.post(target.base + "/v1/leads", json=lead_body(serial), headers=headers)
    if response.status_code != 202:
        raise RuntimeError(f"{target.base}: POST /v1/leads answered {response.status_code}")


def run(env: BenchEnv) -> dict[str, float]:
    assert env.settings.leadline_database_url is not None
    create_table(env.settings.leadline_database_url)
    org = env.make_org()
    workers = str(int(env.option("intake_workers", default_intake_workers())))
    body = json.dumps(lead_body(1)).encode()
    headers = {"Content-Type": "application/json", **org.auth}
    commands = {
        "bare": [sys.executable, "-m", "bench.bare_asgi", "--workers", workers],
        "minimal": [sys.executable, "-m", "bench.minimal_intake", "--workers", workers],
        "intake": [sys.executable, "-m", "leadline", "intake", "--workers", workers],
    }
    ready = {"bare": "/", "minimal": "/", "intake": "/healthz"}
    rounds = int(env.option("rounds", 2))
    measured: dict[str, Measured] = {}
    with ExitStack() as stack:
        # All three serve at once (idle ones cost nothing) and are loaded in turn, round after
        # round, so a burst of other work on the machine does not land on one side only.
        targets = {
            name: stack.enter_context(server(env, commands[name], name, ready[name]))
            for name in ("bare", "minimal", "intake")
        }
        for _ in range(rounds):
            for name, target in targets.items():
                request = LoadRequest(target.base + "/v1/leads", body, headers)
                result = measure(env, target, request)
                if (
                    name not in measured
                    or result.load.requests_per_s > measured[name].load.requests_per_s
                ):
                    measured[name] = result
        request = LoadRequest(targets["intake"].base + "/v1/leads", body, headers)
        half = paced_load(
            request,
            rate=measured["intake"].load.requests_per_s / 2,
            duration=float(env.option("duration", 10.0)),
            connections=int(env.option("connections", 32)),
        )
    if half.error_ratio > MAX_ERROR_RATIO:
        raise RuntimeError(f"half load: {half.errors} failed requests of {half.ok}")
    trips = {
        name: count_round_trips(env, commands[name], f"{name}-counted", ready[name])
        for name in ("minimal", "intake")
    }
    intake, minimal, bare = measured["intake"], measured["minimal"], measured["bare"]
    env.note(
        f"max load: {intake.load.generator}, {env.option('connections', 32)} connections, "
        f"{env.option('duration', 10.0):g} s, best of {rounds} interleaved rounds, {workers} "
        "uvicorn process(es) each; half load: "
        f"{half.generator} at {intake.load.requests_per_s / 2:.0f} req/s, latency from due time"
    )
    env.note(
        f"round trips: {COUNTED_REQUESTS} sequential requests through counting proxies "
        "(bench/roundtrips.py), after as many warm-up requests"
    )
    return {
        "bare_requests_per_s": bare.load.requests_per_s,
        "minimal_requests_per_s": minimal.load.requests_per_s,
        "intake_requests_per_s": intake.load.requests_per_s,
        "ratio_to_minimal": intake.load.requests_per_s / minimal.load.requests_per_s,
        "ratio_to_bare": intake.load.requests_per_s / bare.load.requests_per_s,
        "bare_cpu_ms_per_request": bare.cpu_ms,
        "minimal_cpu_ms_per_request": minimal.cpu_ms,
        "intake_cpu_ms_per_request": intake.cpu_ms,
        "cpu_ratio_to_minimal": intake.cpu_ms / minimal.cpu_ms,
        "minimal_pg_round_trips": trips["minimal"].postgres,
        "minimal_redis_round_trips": trips["minimal"].redis,
        "intake_pg_round_trips": trips["intake"].postgres,
        "intake_redis_round_trips": trips["intake"].redis,
        "intake_p99_ms_at_max_load": intake.load.p99_ms,
        "half_load_requests_per_s": half.requests_per_s,
        "p50_ms_at_half_load": half.p50_ms,
        "p99_ms_at_half_load": half.p99_ms,
    }
