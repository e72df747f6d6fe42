"""Shared by the pipeline benchmarks: realistic leads, enqueueing, and timing a worker drain.

A drain is timed from the first message a worker finishes to the last one, so worker start-up
(thread spawn, consumer connect) is not counted against either side of a comparison.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypedDict

import dramatiq
from dramatiq.broker import MessageProxy
from dramatiq.middleware import Middleware
from sqlalchemy import func, select

from bench.roundtrips import Tally, counting_proxies
from bench.setup import BenchEnv, BenchOrg
from leadline.jsondata import JsonObject

NOOP_QUEUE = "bench_noop"


class LeadConsent(TypedDict):
    sms: bool
    text: str


class LeadBody(TypedDict):
    """What a form posts to POST /v1/leads."""

    name: str
    phone: str
    email: str
    message: str
    source: str
    consent: LeadConsent


# A do-nothing actor with process_event's arguments (org id, event id).
NoopActor = dramatiq.Actor[[str, str], None]


def lead_body(serial: int) -> LeadBody:
    """A form submission from a distinct person (unique phone and email per serial)."""
    return {
        "name": f"Jordan Example {serial}",
        "phone": f"+1415{2_000_000 + serial % 7_000_000:07d}",
        "email": f"jordan.example.{serial}@example.org",
        "message": "Hi, I'd like a quote for a kitchen remodel next month. Call after 5pm.",
        "source": "website",
        "consent": {"sms": True, "text": "I agree to receive texts about my request."},
    }


def inbound_payload(serial: int) -> JsonObject:
    """The payload exactly as POST /v1/leads stores it."""
    from intake.routes.leads import lead_payload
    from intake.schemas import LeadIn
    from leadline.clock import utcnow

    return lead_payload(LeadIn.model_validate(lead_body(serial)), utcnow())


def store_lead_events(env: BenchEnv, org: BenchOrg, first: int, count: int) -> float:
    """Insert `count` API lead events the way intake does (encrypt, insert, commit, enqueue).

    Returns events stored per second.
    """
    from intake.inbox import store_inbound_event

    started = time.perf_counter()
    for serial in range(first, first + count):
        stored = store_inbound_event(env.context, org.id, "api", None, inbound_payload(serial))
        if not stored.enqueued:
            raise RuntimeError("enqueue failed: is Redis reachable?")
    return count / (time.perf_counter() - started)


def store_lead_events_batched(env: BenchEnv, org: BenchOrg, first: int, count: int) -> None:
    """The same rows and messages as store_lead_events, one transaction per batch: cheaper for
    the benchmark process, so it takes less CPU from the worker it feeds."""
    from tasks.inbound_events import process_event

    for event_id in insert_lead_events(env, org, first, count):
        process_event.send(str(org.id), str(event_id))


def insert_lead_events(env: BenchEnv, org: BenchOrg, first: int, count: int) -> list[uuid.UUID]:
    """Pending API lead events as the intake stores them, in one transaction, not enqueued."""
    from sqlalchemy.dialects.postgresql import insert

    from models.tables import InboundEvent
    from tasks.inbound_events import encrypt_payload

    context = env.context
    ids = [uuid.uuid4() for _ in range(count)]
    with context.db.tenant(org.id) as session:
        cipher = context.keys.cipher(session, org.id)
        rows = [
            {
                "id": event_id,
                "org_id": org.id,
                "source": "api",
                "payload_ct": encrypt_payload(cipher, event_id, inbound_payload(serial)),
                "status": "pending",
            }
            for serial, event_id in enumerate(ids, start=first)
        ]
        session.execute(insert(InboundEvent), rows)
    return ids


class CompletionCounter(Middleware):
    """Counts finished messages and notes when the first and the expected last one finished."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.done = threading.Event()
        self.expect(0)

    def expect(self, count: int) -> None:
        with self._lock:
            self.expected, self.finished, self.failed = count, 0, 0
            self.first_at = self.last_at = 0.0
            self.done.clear()

    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: MessageProxy,
        *,
        result: object = None,
        exception: BaseException | None = None,
    ) -> None:
        now = time.perf_counter()
        with self._lock:
            if exception is not None:
                self.failed += 1
                return
            self.finished += 1
            self.first_at = self.first_at or now
            if self.finished >= self.expected:
                self.last_at = now
                self.done.set()

    def rate(self) -> float:
        """Messages per second between the first and the last completion."""
        span = self.last_at - self.first_at
        return (self.finished - 1) / span if span > 0 else float("inf")


@dataclass(frozen=True)
class Drained:
    per_second: float
    cpu_ms_per_message: float  # this whole process, worker start and stop included


@dataclass
class Drainer:
    """Runs a fresh Dramatiq worker (same settings every time) until the queue is drained."""

    broker: dramatiq.Broker
    threads: int
    counter: CompletionCounter

    @classmethod
    def install(cls, env: BenchEnv, broker: dramatiq.Broker | None = None) -> Drainer:
        """A drainer on `broker` (default: the installed one) with the bench's threads."""
        broker = broker or dramatiq.get_broker()
        counter = CompletionCounter()
        broker.add_middleware(counter)
        return cls(broker, env.settings.leadline_worker_threads, counter)

    def drain(self, count: int, timeout: float = 600.0) -> Drained:
        """Start a worker, wait for `count` successes, stop it."""
        self.counter.expect(count)
        cpu_before = time.process_time()
        from workers.runtime import WORKER_IDLE_POLL_MS, tune_worker_process

        # The same worker settings as `leadline worker`.
        tune_worker_process()
        worker = dramatiq.Worker(
            self.broker, worker_threads=self.threads, worker_timeout=WORKER_IDLE_POLL_MS
        )
        worker.start()
        try:
            self._wait(count, time.monotonic() + timeout)
        finally:
            worker.stop(timeout=30_000)
            self._forget(worker)
        cpu_ms = (time.process_time() - cpu_before) * 1000 / count
        return Drained(self.counter.rate(), cpu_ms)

    def _forget(self, worker: dramatiq.Worker) -> None:
        # A stopped worker leaves its middleware on the broker; the next worker adds another.
        self.broker.middleware[:] = [
            m for m in self.broker.middleware if getattr(m, "worker", None) is not worker
        ]

    def _wait(self, count: int, deadline: float) -> None:
        while not self.counter.done.wait(0.2):
            if self.counter.failed:
                raise RuntimeError(f"{self.counter.failed} messages failed while draining")
            if time.monotonic() > deadline:
                raise RuntimeError(f"drain timed out: {self.counter.finished}/{count} done")


def declare_noop_actor(broker: dramatiq.Broker) -> NoopActor:
    """A do-nothing actor taking the same arguments as process_event, on the same broker."""

    def bench_noop(org_id: str, event_id: str) -> None:
        return None

    return dramatiq.Actor(
        bench_noop,
        broker=broker,
        actor_name="bench_noop",
        queue_name=NOOP_QUEUE,
        priority=0,
        options={},
    )


def send_noop_messages(actor: NoopActor, count: int) -> None:
    org = str(uuid.uuid4())
    for _ in range(count):
        actor.send(org, str(uuid.uuid4()))


def count_processed(env: BenchEnv, org: BenchOrg) -> tuple[int, int]:
    """(processed inbound events, leads) of the org, to check the drain did the work."""
    from models.tables import InboundEvent, Lead

    with env.context.db.tenant(org.id) as session:
        processed = session.scalar(
            select(func.count()).select_from(InboundEvent).where(InboundEvent.status == "processed")
        )
        leads = session.scalar(select(func.count()).select_from(Lead))
    return int(processed or 0), int(leads or 0)


@dataclass
class PipelineBench:
    """Times the real pipeline for one org, checking every event became a lead."""

    env: BenchEnv
    drainer: Drainer
    org: BenchOrg
    next_serial: int = 0
    expected: tuple[int, int, int] = (0, 0, 0)

    def store(self, events: int) -> float:
        """Store a batch of events (enqueued, not yet drained); events stored per second."""
        before_events, before_leads = count_processed(self.env, self.org)
        self.expected = (before_events, before_leads, events)
        stored_rate = store_lead_events(self.env, self.org, self.next_serial, events)
        self.next_serial += events
        return stored_rate

    def verify(self) -> None:
        """Every event of the last batch became a new lead."""
        before_events, before_leads, events = self.expected
        after_events, after_leads = count_processed(self.env, self.org)
        if (after_events - before_events, after_leads - before_leads) != (events, events):
            raise RuntimeError("the drain did not turn every event into a new lead")

    def round(self, events: int) -> tuple[float, Drained]:
        """Events stored per second, and the drain of them, for one batch."""
        stored_rate = self.store(events)
        drained = self.drainer.drain(events)
        self.verify()
        return stored_rate, drained


def best_of(rounds: int, measure: Callable[[], Drained]) -> Drained:
    """The fastest of several rounds: the least disturbed by other work on the machine."""
    return max((measure() for _ in range(rounds)), key=lambda drained: drained.per_second)


@contextmanager
def proxied_runtime(env: BenchEnv) -> Iterator[tuple[dramatiq.Broker, str, Tally]]:
    """A runtime (broker, task context) whose PostgreSQL and Redis traffic is counted; the
    bench's own runtime is put back afterwards."""
    from tasks.context import current_context, open_runtime, set_context
    from workers.runtime import install_broker, use_database

    assert env.settings.leadline_database_url and env.settings.leadline_redis_url
    original_broker, original_context = dramatiq.get_broker(), current_context()
    with counting_proxies(
        env.settings.leadline_database_url, env.settings.leadline_redis_url
    ) as proxies:
        settings = env.settings.model_copy(
            update={
                "leadline_database_url": proxies.database_url,
                "leadline_redis_url": proxies.redis_url,
            }
        )
        context = open_runtime(settings)
        context.db.start_cache_invalidations()
        try:
            yield dramatiq.get_broker(), proxies.database_url, Tally(proxies)
        finally:
            dramatiq.get_broker().close()
            context.db.stop_cache_invalidations()
            context.db.dispose()
            install_broker(original_broker)
            assert original_context is not None
            set_context(original_context)
            use_database(original_context.db)
