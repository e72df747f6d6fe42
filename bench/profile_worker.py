"""Profile of the worker's hot path: `process_event`'s plain function called in this process
(no broker, no worker threads) for API lead events stored as the intake stores them.

Two passes over fresh events of one org, after a warm-up: one timed on the process-time clock
(CPU ms per event, nothing else running in the process; wall ms per event, one event's latency
with its round trips; and the CPU the PostgreSQL backends of the benchmark's database spent
meanwhile, read from /proc when the server runs on this machine), one under cProfile on the
same clock (Python calls per event and the functions with the most cumulative time, printed;
the whole profile is written to bench/results/profile_worker.pstats). Every event must become a
new lead. `--events` sets the events per pass (500).
"""

from __future__ import annotations

import cProfile
import io
import os
import pstats
import time
import uuid
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

from bench.pipeline import count_processed, insert_lead_events
from bench.setup import BenchEnv, BenchOrg

WARMUP_EVENTS = 50
TOP_FUNCTIONS = 30
RESULTS = Path(__file__).resolve().parent / "results"


def process(org: BenchOrg, event_ids: list[uuid.UUID]) -> None:
    from tasks.inbound_events import process_event

    org_id = str(org.id)
    for event_id in event_ids:
        process_event.fn(org_id, str(event_id))


def server_cpu_seconds(env: BenchEnv) -> float:
    """CPU time of the PostgreSQL backends serving this benchmark's database (a server on
    this machine: /proc/PID/stat); 0 when they cannot be read."""
    url = make_url(str(env.settings.leadline_database_url))
    with psycopg.connect(env.services.admin_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (url.database,),
        ).fetchall()
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for (pid,) in rows:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
    return total


def check(env: BenchEnv, org: BenchOrg, expected: int) -> None:
    processed, leads = count_processed(env, org)
    if (processed, leads) != (expected, expected):
        raise RuntimeError(f"{processed} events processed, {leads} leads; expected {expected}")


def run(env: BenchEnv) -> dict[str, float]:
    events = int(env.option("events", 500))
    org = env.make_org()
    process(org, insert_lead_events(env, org, 0, WARMUP_EVENTS))
    ids = insert_lead_events(env, org, WARMUP_EVENTS, events)
    server_before = server_cpu_seconds(env)
    started, wall_started = time.process_time(), time.perf_counter()
    process(org, ids)
    cpu_ms = (time.process_time() - started) * 1000 / events
    wall_ms = (time.perf_counter() - wall_started) * 1000 / events
    server_ms = (server_cpu_seconds(env) - server_before) * 1000 / events
    ids = insert_lead_events(env, org, WARMUP_EVENTS + events, events)
    profile = cProfile.Profile(time.process_time)
    profile.runcall(process, org, ids)
    check(env, org, WARMUP_EVENTS + 2 * events)
    stats = pstats.Stats(profile, stream=io.StringIO())
    calls = int(getattr(stats, "total_calls", 0))
    profiled_ms = float(getattr(stats, "total_tt", 0.0)) * 1000 / events
    print_top(stats)
    RESULTS.mkdir(exist_ok=True)
    stats.dump_stats(RESULTS / "profile_worker.pstats")
    env.note(f"{events} events per pass, one thread, in-process (no broker)")
    return {
        "cpu_ms_per_event": cpu_ms,
        "wall_ms_per_event": wall_ms,
        "server_cpu_ms_per_event": server_ms,
        "python_calls_per_event": calls / events,
        "profiled_cpu_ms_per_event": profiled_ms,
    }


def print_top(stats: pstats.Stats) -> None:
    out = io.StringIO()
    stats.stream = out  # type: ignore[attr-defined]
    stats.sort_stats("cumulative").print_stats(TOP_FUNCTIONS)
    print(out.getvalue())
