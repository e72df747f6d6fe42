"""End to end: API lead events → worker → encrypted, deduplicated lead rows (plus whatever
alerts and webhook rows the registered listeners add), against a no-op actor.

Both sides run on the same broker, the same middleware and a worker with the same thread
count, in the same run. Events are stored exactly as POST /v1/leads stores them
(`store_inbound_event`: encrypt, insert, commit, enqueue) before the worker starts; the figure
is how fast a worker drains them. Target: pipeline ≥ 40 % of the no-op throughput.
"""

from __future__ import annotations

from bench.pipeline import (
    Drained,
    Drainer,
    PipelineBench,
    best_of,
    declare_noop_actor,
    send_noop_messages,
)
from bench.setup import BenchEnv

TARGETS = {"ratio": (">=", 0.40)}
WARMUP_EVENTS = 100


def run(env: BenchEnv) -> dict[str, float]:
    events = int(env.option("events", 2000))
    rounds = int(env.option("rounds", 2))
    drainer = Drainer.install(env)
    noop = declare_noop_actor(drainer.broker)
    pipeline = PipelineBench(env, drainer, env.make_org())
    stored_rates: list[float] = []

    def noop_round() -> Drained:
        send_noop_messages(noop, events)
        return drainer.drain(events)

    def pipeline_round() -> Drained:
        stored, drained = pipeline.round(events)
        stored_rates.append(stored)
        return drained

    send_noop_messages(noop, WARMUP_EVENTS)
    drainer.drain(WARMUP_EVENTS)
    pipeline.round(WARMUP_EVENTS)
    noop_best = best_of(rounds, noop_round)
    pipeline_best = best_of(rounds, pipeline_round)
    env.note(
        f"{events} events per round, best of {rounds}, {drainer.threads} worker threads "
        "in one process; store rate: store_inbound_event in one thread"
    )
    return {
        "noop_msgs_per_s": noop_best.per_second,
        "pipeline_events_per_s": pipeline_best.per_second,
        "ratio": pipeline_best.per_second / noop_best.per_second,
        "noop_cpu_ms_per_msg": noop_best.cpu_ms_per_message,
        "pipeline_cpu_ms_per_event": pipeline_best.cpu_ms_per_message,
        "store_events_per_s": max(stored_rates),
    }
