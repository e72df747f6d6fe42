"""Lets work that outlives its message finish before a worker stops.

Some actors hand work to background machinery and return (webhook requests run on the event
loop thread). They register a drain callback here; the worker calls every callback when it
shuts down: after its worker threads stopped (so nothing new is handed off) and before the
AsyncIO middleware stops the event loop (Drain sits after AsyncIO; `after_*` hooks run in
reverse order).
"""

from __future__ import annotations

from collections.abc import Callable

import dramatiq
from dramatiq.middleware import Middleware

from leadline.logging import get_logger

log = get_logger(__name__)
DrainCallback = Callable[[], None]
_callbacks: list[DrainCallback] = []


def register_drain(callback: DrainCallback) -> DrainCallback:
    if callback not in _callbacks:
        _callbacks.append(callback)
    return callback


class Drain(Middleware):
    """Calls the registered drain callbacks before the worker shuts its threads down."""

    def after_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        for callback in list(_callbacks):
            try:
                callback()
            except Exception as exc:  # one failing drain must not block the others
                log.error("drain callback failed", error=type(exc).__name__)
