"""Faults during the load, planned from the seed: worker SIGKILLs (each followed by a
restart), one Redis SIGKILL (restarted on its port with its AOF), one PostgreSQL
immediate-mode restart, and one PostgreSQL stop of 30 s.

Kills of workers end early enough that the webhook claims they strand (a 2-minute lease)
are released by the sweeper before the run waits for quiescence to end.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from tests.chaos.errors import ChaosError
from tests.chaos.services import OwnPostgres, OwnRedis
from tests.chaos.stack import WORKERS, Stack

KILL_WORKER, KILL_REDIS = "kill_worker", "kill_redis"
RESTART_POSTGRES, STOP_POSTGRES = "restart_postgres", "stop_postgres"
REDIS_DOWN_SECONDS = 3.0
POSTGRES_DOWN_SECONDS = 30.0


@dataclass(frozen=True)
class Fault:
    at: float  # seconds after the load started
    kind: str
    worker: int = 0


def fault_plan(rng: random.Random, duration: float, worker_kills: int) -> list[Fault]:
    """Redis early, the PostgreSQL restart next, then its 30 s stop, all inside the load."""
    faults = [
        Fault(rng.uniform(0.05, 0.6) * duration, KILL_WORKER, rng.randrange(WORKERS))
        for _ in range(worker_kills)
    ]
    faults += [
        Fault(rng.uniform(0.12, 0.22) * duration, KILL_REDIS),
        Fault(rng.uniform(0.30, 0.38) * duration, RESTART_POSTGRES),
        Fault(rng.uniform(0.45, 0.52) * duration, STOP_POSTGRES),
    ]
    return sorted(faults, key=lambda fault: fault.at)


@dataclass(frozen=True)
class Done:
    fault: Fault
    started: float  # Unix seconds
    finished: float
    note: str


@dataclass
class Injector:
    """Applies the plan in a thread of its own; `done` says what happened, and when."""

    plan: list[Fault]
    stack: Stack
    postgres: OwnPostgres
    redis: OwnRedis
    say: Callable[[str], None]
    done: list[Done] = field(default_factory=list)
    error: str | None = None

    def run(self, start: float, stop: threading.Event) -> None:
        try:
            for fault in self.plan:
                if stop.wait(max(0.0, start + fault.at - time.time())):
                    return
                began = time.time()
                note = self.apply(fault, stop)
                ended = time.time()
                self.done.append(Done(fault, began, ended, note))
                until = f" (until +{ended - start:.1f}s)" if ended - began > 1 else ""
                self.say(f"  +{began - start:6.1f}s  {note}{until}")
        except ChaosError as exc:
            self.error = str(exc)
            self.say(f"  fault injection stopped: {exc}")

    def apply(self, fault: Fault, stop: threading.Event) -> str:
        if fault.kind == KILL_WORKER:
            worker = self.stack.workers[fault.worker]
            self.stack.restart_worker(worker)
            return f"SIGKILL {worker.name}, restarted"
        if fault.kind == KILL_REDIS:
            self.redis.kill()
            stop.wait(REDIS_DOWN_SECONDS)
            self.redis.start()
            return f"SIGKILL redis, restarted after {REDIS_DOWN_SECONDS:.0f} s (same port and AOF)"
        if fault.kind == RESTART_POSTGRES:
            self.postgres.stop("immediate")
            self.postgres.start()
            return "PostgreSQL stopped in immediate mode, started again (crash recovery)"
        self.postgres.stop("fast")
        stop.wait(POSTGRES_DOWN_SECONDS)
        self.postgres.start()
        return f"PostgreSQL stopped for {POSTGRES_DOWN_SECONDS:.0f} s, started again"

    def postgres_outage(self) -> tuple[float, float] | None:
        """When the 30 s stop began and ended (Unix seconds), if it happened."""
        for done in self.done:
            if done.fault.kind == STOP_POSTGRES:
                return done.started, done.finished
        return None
