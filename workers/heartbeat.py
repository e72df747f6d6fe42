"""Liveness of the worker's consumer loops: when each one last turned.

Dramatiq runs one consumer thread per queue (and per delay queue). Each turn of its loop asks
the broker for the next message, with a timeout (`worker_timeout`, one second in `leadline
worker`), so a healthy loop turns at least once a second even when its queue is idle; while
the broker is unreachable it retries about once a second, and turns then too. A loop that has
not turned for `stale_after` seconds is stuck (a hung connection, a deadlock, a paused
worker): `/healthz` answers 503 and the orchestrator restarts the process. Reachability of the
broker itself is `/readyz`'s question, not this one.

`ConsumerHeartbeat` is a middleware: it learns of each consumer thread when it boots and
forgets it when it shuts down. The brokers (workers/brokers.py) call `beat()` from the
consumer thread at every poll, through `HeartbeatConsumer`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Self

import dramatiq
from dramatiq.broker import Consumer, MessageProxy
from dramatiq.middleware import Middleware
from dramatiq.worker import ConsumerThread

from leadline.jsondata import JsonObject

MonotonicClock = Callable[[], float]


@dataclass(frozen=True)
class Liveness:
    alive: bool
    detail: JsonObject

    def as_dict(self) -> JsonObject:
        return {"status": "ok" if self.alive else "stale", **self.detail}


class ConsumerHeartbeat(Middleware):
    """When each running consumer thread last polled its broker (see the module docstring)."""

    def __init__(self, clock: MonotonicClock = time.monotonic) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._beats: dict[int, tuple[str, float]] = {}

    def after_consumer_thread_boot(self, broker: dramatiq.Broker, thread: ConsumerThread) -> None:
        with self._lock:
            self._beats[threading.get_ident()] = (str(thread.queue_name), self.clock())

    def before_consumer_thread_shutdown(
        self, broker: dramatiq.Broker, thread: ConsumerThread
    ) -> None:
        with self._lock:
            self._beats.pop(threading.get_ident(), None)

    def beat(self) -> None:
        """Called from a consumer thread each time its loop turns."""
        ident = threading.get_ident()
        with self._lock:
            if ident in self._beats:
                self._beats[ident] = (self._beats[ident][0], self.clock())

    def liveness(self, stale_after: float) -> Liveness:
        """Alive when at least one consumer runs and none has been silent for `stale_after`."""
        now = self.clock()
        with self._lock:
            beats = list(self._beats.values())
        stale = sorted(queue for queue, at in beats if now - at > stale_after)
        if not beats:
            return Liveness(False, {"consumers": 0, "stale": []})
        return Liveness(not stale, {"consumers": len(beats), "stale": stale})


class HeartbeatConsumer(Consumer):
    """A broker's consumer that reports every poll to the heartbeat."""

    def __init__(self, inner: Consumer, heartbeat: ConsumerHeartbeat) -> None:
        self.inner = inner
        self.heartbeat = heartbeat

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> MessageProxy | None:
        self.heartbeat.beat()
        message: MessageProxy | None = next(self.inner)
        return message

    def ack(self, message: MessageProxy) -> None:
        self.inner.ack(message)

    def nack(self, message: MessageProxy) -> None:
        self.inner.nack(message)

    def requeue(self, messages: Iterable[MessageProxy]) -> None:
        self.inner.requeue(messages)

    def close(self) -> None:
        self.inner.close()


class LoopHeartbeat:
    """When a single loop (the scheduler's) last turned."""

    def __init__(self, clock: MonotonicClock = time.monotonic) -> None:
        self.clock = clock
        self._last: float | None = None

    def beat(self) -> None:
        self._last = self.clock()

    def liveness(self, stale_after: float) -> Liveness:
        if self._last is None:
            return Liveness(False, {"last_turn_seconds_ago": None})
        ago = self.clock() - self._last
        return Liveness(ago <= stale_after, {"last_turn_seconds_ago": round(ago, 1)})
