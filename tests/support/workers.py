"""Real Dramatiq worker threads in the test process, stopped without leaving a trace."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import dramatiq


@contextmanager
def worker_threads(
    broker: dramatiq.Broker, threads: int = 4, queues: set[str] | None = None
) -> Iterator[dramatiq.Worker]:
    """Worker threads consuming `queues` (all by default) while the block runs."""
    running = start_worker(broker, threads, queues)
    try:
        yield running
    finally:
        stop_worker(broker, running)


def start_worker(
    broker: dramatiq.Broker, threads: int = 4, queues: set[str] | None = None
) -> dramatiq.Worker:
    running = dramatiq.Worker(broker, queues=queues, worker_threads=threads, worker_timeout=100)
    running.start()
    return running


def stop_worker(broker: dramatiq.Broker, running: dramatiq.Worker) -> None:
    running.stop()
    # Worker.start adds a middleware that starts a consumer for every queue declared later and
    # stop() leaves it on the broker: without this, an actor declared by a later test module
    # would get consumers of this stopped worker, which take its messages and never run them.
    broker.middleware[:] = [
        m for m in broker.middleware if getattr(m, "worker", None) is not running
    ]
