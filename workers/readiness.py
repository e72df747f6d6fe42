"""Readiness: can this process do its job right now? Postgres, the broker the process actually
uses (Redis or RabbitMQ) and, where the process needs it, the Redis of rate limits and ops
sessions answer, and the schema is at the migrations' heads. Used by every role's `/readyz`
and by `leadline status`.

Each check runs in its own thread under one deadline, so a server that drops packets turns
the answer into "timeout" instead of hanging the probe. Details are error class names only:
never URLs, hosts or credentials.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass

from sqlalchemy import Engine

from models.db import Database, connect_retrying
from models.migrate import is_current
from workers.brokers import LeadlineBroker, ping_redis

OK = "ok"
CHECK_TIMEOUT_SECONDS = 3.0


@dataclass(frozen=True)
class Readiness:
    checks: dict[str, str]

    @property
    def ready(self) -> bool:
        return all(result == OK for result in self.checks.values())

    def as_dict(self) -> dict[str, object]:
        return {"status": "ready" if self.ready else "unready", "checks": self.checks}


def check_postgres(engine: Engine) -> str:
    connect_retrying(engine).close()
    return OK


def check_migrations(engine: Engine) -> str:
    return OK if is_current(engine) else "behind"


def readiness(db: Database, broker: LeadlineBroker, redis_url: str | None = None) -> Readiness:
    """`redis_url`: given by processes that also need LEADLINE_REDIS_URL (the intake's rate
    limits and ops sessions), which may be another server than the broker."""
    checks: dict[str, Callable[[], str]] = {"postgres": lambda: check_postgres(db.app_engine)}
    if redis_url is not None:
        checks["redis"] = lambda: ping_redis(redis_url)
    checks["broker"] = broker.check_connection
    checks["migrations"] = lambda: check_migrations(db.owner_engine)
    return Readiness(run_checks(checks))


def run_checks(checks: dict[str, Callable[[], str]]) -> dict[str, str]:
    pool = ThreadPoolExecutor(max_workers=len(checks), thread_name_prefix="readiness")
    deadline = time.monotonic() + CHECK_TIMEOUT_SECONDS
    futures = {name: pool.submit(check) for name, check in checks.items()}
    results = {name: _result(future, deadline) for name, future in futures.items()}
    pool.shutdown(wait=False, cancel_futures=True)
    return results


def _result(future: Future[str], deadline: float) -> str:
    try:
        return future.result(timeout=max(0.0, deadline - time.monotonic()))
    except FutureTimeout:
        return "timeout"
    except Exception as exc:
        return f"unreachable: {type(exc).__name__}"
