"""Processing latency per actor and outcome, into `leadline_actor_duration_seconds`.

Placed after Retries so that `message.failed` already tells a final failure ("dead") from one
that will be retried ("retry").
"""

from __future__ import annotations

import threading
import time

import dramatiq
from dramatiq.broker import MessageProxy
from dramatiq.middleware import Middleware

from leadline.metrics import ACTOR_DURATION


class ProcessingMetrics(Middleware):
    def __init__(self) -> None:
        self._started: dict[str, float] = {}
        self._lock = threading.Lock()

    def before_process_message(self, broker: dramatiq.Broker, message: MessageProxy) -> None:
        with self._lock:
            self._started[message.message_id] = time.perf_counter()

    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: MessageProxy,
        *,
        result: object = None,
        exception: BaseException | None = None,
    ) -> None:
        self._observe(message, outcome_of(message, exception))

    def after_skip_message(self, broker: dramatiq.Broker, message: MessageProxy) -> None:
        self._observe(message, "skipped")

    def _observe(self, message: MessageProxy, outcome: str) -> None:
        with self._lock:
            started = self._started.pop(message.message_id, None)
        if started is not None:
            elapsed = time.perf_counter() - started
            ACTOR_DURATION.labels(actor=message.actor_name, outcome=outcome).observe(elapsed)


def outcome_of(message: MessageProxy, exception: BaseException | None) -> str:
    if exception is None:
        return "ok"
    return "dead" if message.failed else "retry"
