"""Worker: API lead events → process_event (decrypt, dedupe by blind index, encrypted lead
row, plus every alert and webhook row the registered listeners add) against the physical-limit
baseline, the minimal actor (bench/minimal_actor.py: select by blind index, insert a row,
update the event, commit), and a no-op actor for the queue's own ceiling.

All three run on the same broker and middleware, drained by a fresh Dramatiq worker with the
same thread count in this process, in the same run. Events are stored before the worker
starts (process_event's exactly as POST /v1/leads stores them); the figure is how fast a worker
drains them, timed from the first to the last completion. Round trips per event are counted
by proxies on the wire (bench/roundtrips.py) in a separate drain through a proxied runtime.

Target: pipeline ≥ 50 % of the minimal actor's events/s.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import dramatiq

from bench.minimal_actor import MinimalActor, create_tables
from bench.pipeline import (
    Drained,
    Drainer,
    PipelineBench,
    declare_noop_actor,
    proxied_runtime,
    send_noop_messages,
)
from bench.roundtrips import RoundTrips
from bench.setup import BenchEnv

TARGETS = {"ratio_to_minimal": (">=", 0.50)}
WARMUP_EVENTS = 100
COUNTED_EVENTS = 300


@dataclass
class Rig:
    """The three workloads on one broker, each a function that queues n messages."""

    drainer: Drainer
    queue: dict[str, Callable[[int], None]]
    pipeline: PipelineBench

    def round(self, name: str, events: int) -> Drained:
        self.queue[name](events)
        drained = self.drainer.drain(events)
        if name == "pipeline":
            self.pipeline.verify()
        return drained


def build_rig(
    env: BenchEnv, broker: dramatiq.Broker, database_url: str, bench: PipelineBench | None
) -> tuple[Rig, PipelineBench, MinimalActor]:
    drainer = Drainer.install(env, broker)
    noop = declare_noop_actor(broker)
    minimal = MinimalActor(broker, database_url)
    pipeline = bench or PipelineBench(env, drainer, env.make_org())
    pipeline.drainer = drainer

    def queue_pipeline(count: int) -> None:
        pipeline.store(count)

    queues: dict[str, Callable[[int], None]] = {
        "noop": lambda count: send_noop_messages(noop, count),
        "minimal": minimal.send_events,
        "pipeline": queue_pipeline,
    }
    return Rig(drainer, queues, pipeline), pipeline, minimal


def count_round_trips(env: BenchEnv, bench: PipelineBench) -> dict[str, RoundTrips]:
    counted: dict[str, RoundTrips] = {}
    with proxied_runtime(env) as (broker, database_url, tally):
        rig, _, minimal = build_rig(env, broker, database_url, bench)
        try:
            for name in ("noop", "minimal", "pipeline"):
                rig.round(name, WARMUP_EVENTS)
                rig.queue[name](COUNTED_EVENTS)
                tally.start()
                rig.drainer.drain(COUNTED_EVENTS)
                counted[name] = tally.per(COUNTED_EVENTS)
        finally:
            minimal.pool.close()
    return counted


def run(env: BenchEnv) -> dict[str, float]:
    events = int(env.option("events", 2000))
    rounds = int(env.option("rounds", 2))
    assert env.settings.leadline_database_url is not None
    create_tables(env.settings.leadline_database_url)
    rig, pipeline, minimal = build_rig(
        env, dramatiq.get_broker(), env.settings.leadline_database_url, None
    )
    best: dict[str, Drained] = {}
    names = ("noop", "minimal", "pipeline")
    try:
        for name in names:
            rig.round(name, WARMUP_EVENTS)
        # Interleaved rounds: a burst of other work on the machine does not land on one only.
        for _ in range(rounds):
            for name in names:
                drained = rig.round(name, events)
                if name not in best or drained.per_second > best[name].per_second:
                    best[name] = drained
    finally:
        minimal.pool.close()
    trips = count_round_trips(env, pipeline)
    env.note(
        f"{events} events per round, best of {rounds} interleaved rounds, "
        f"{rig.drainer.threads} worker threads "
        "in one process; CPU: this process (worker and its broker client) per message"
    )
    env.note(
        f"round trips: {COUNTED_EVENTS} events drained through counting proxies "
        "(bench/roundtrips.py); Redis includes the consumer's fetches, acks and heartbeats"
    )
    figures = {
        "noop_msgs_per_s": best["noop"].per_second,
        "minimal_events_per_s": best["minimal"].per_second,
        "pipeline_events_per_s": best["pipeline"].per_second,
        "ratio_to_minimal": best["pipeline"].per_second / best["minimal"].per_second,
        "ratio_to_noop": best["pipeline"].per_second / best["noop"].per_second,
        "noop_cpu_ms_per_msg": best["noop"].cpu_ms_per_message,
        "minimal_cpu_ms_per_event": best["minimal"].cpu_ms_per_message,
        "pipeline_cpu_ms_per_event": best["pipeline"].cpu_ms_per_message,
    }
    for name in ("noop", "minimal", "pipeline"):
        figures[f"{name}_pg_round_trips"] = trips[name].postgres
        figures[f"{name}_redis_round_trips"] = trips[name].redis
    return figures
