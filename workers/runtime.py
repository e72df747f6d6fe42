"""The Dramatiq runtime: the ordered middleware list, the broker, and actor registration.

Actors are declared at import time against a placeholder broker that has the same middleware
(so their options are validated), and are re-bound to the real broker by `install_broker`,
which the composition root (CLI, tests) calls once it knows the settings.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import ParamSpec

import dramatiq
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import (
    AgeLimit,
    AsyncIO,
    Callbacks,
    CurrentMessage,
    Middleware,
    Pipelines,
    Retries,
    ShutdownNotifications,
    TimeLimit,
)

from models.db import Database
from workers.brokers import LeadlineBroker, build_leadline_broker
from workers.heartbeat import ConsumerHeartbeat
from workers.middleware.context import LogContext
from workers.middleware.dead_letters import DeadLetters
from workers.middleware.drain import Drain
from workers.middleware.metrics import ProcessingMetrics
from workers.middleware.redaction import RedactedTracebacks

P = ParamSpec("P")
# Every actor's signature differs; none returns anything (what it does is in the database).
SomeActor = dramatiq.Actor[..., None]
ACTORS: list[SomeActor] = []
_database: Database | None = None


# How often the running thread hands over the GIL (Python's default: every 5 ms). A worker
# thread whose PostgreSQL or Redis answer has arrived waits for the GIL until then: with eight
# threads and seven round trips per event, that wait, not CPU, bounded the events per second
# (bench/README.md: 0.16 of the minimal actor at 5 ms, 0.48 at 0.5 ms, in the same hour).
WORKER_SWITCH_INTERVAL = 0.0005
# The longest an idle queue's consumer sleeps between fetches (Dramatiq's worker_timeout; its
# back-off starts at a few milliseconds). Shorter would only spend CPU polling empty queues.
WORKER_IDLE_POLL_MS = 1000


def tune_worker_process() -> None:
    """Before a process starts its Dramatiq worker threads (`leadline worker`, the benchmarks)."""
    sys.setswitchinterval(WORKER_SWITCH_INTERVAL)


def use_database(database: Database | None) -> None:
    """Set by the composition root: where the dead-letter middleware writes its rows."""
    global _database
    _database = database


def current_database() -> Database | None:
    return _database


def build_middleware() -> list[Middleware]:
    """Order matters: limits first, then context for logs, then retries; what reads the
    outcome Retries decides (`message.failed`) comes after it."""
    return [
        AgeLimit(),
        TimeLimit(time_limit=5 * 60 * 1000),
        ShutdownNotifications(),
        CurrentMessage(),
        LogContext(),
        Callbacks(),
        Pipelines(),
        Retries(max_retries=10, min_backoff=1000, max_backoff=5 * 60 * 1000),
        DeadLetters(current_database),
        ProcessingMetrics(),
        RedactedTracebacks(),
        # The event loop thread shared by async work (webhook requests), one per process.
        AsyncIO(),
        # After AsyncIO: `after_*` hooks run in reverse, so work handed off by actors is
        # drained once the worker threads have stopped and before the event loop stops.
        Drain(),
        # Which consumer loops run, and when each last polled (the worker's /healthz).
        ConsumerHeartbeat(),
    ]


_placeholder = StubBroker(middleware=build_middleware())


def actor(
    *, queue_name: str = "default", actor_name: str | None = None, **options: object
) -> Callable[[Callable[P, None]], dramatiq.Actor[P, None]]:
    """Declare an actor; it is bound to the real broker by install_broker."""

    def decorate(fn: Callable[P, None]) -> dramatiq.Actor[P, None]:
        declared = dramatiq.Actor(
            fn,
            broker=_placeholder,
            actor_name=actor_name or fn.__name__,
            queue_name=queue_name,
            priority=0,
            options=options,
        )
        ACTORS.append(declared)
        return declared

    return decorate


def build_broker(url: str, namespace: str) -> LeadlineBroker:
    """RabbitMQ for an `amqp://` URL, Redis otherwise (workers/brokers.py)."""
    return build_leadline_broker(url, namespace, build_middleware())


def install_broker(broker: dramatiq.Broker) -> None:
    """Make `broker` the global broker and move every declared actor onto it."""
    dramatiq.set_broker(broker)
    for declared in ACTORS:
        declared.broker = broker
        broker.declare_actor(declared)
