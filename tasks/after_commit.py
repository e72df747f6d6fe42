"""Messages to send once the transaction that justified them has committed."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import dramatiq
import redis

from leadline.logging import get_logger
from leadline.progress import ProgressCallback

log = get_logger(__name__)


@dataclass
class AfterCommit:
    """Collects (actor, args) inside a transaction; `flush` sends them after COMMIT.

    A send that fails (Redis down) is only logged: the row it points at stays pending and the
    sweeper enqueues it later, so nothing is lost.
    """

    pending: list[tuple[dramatiq.Actor[Any, Any], tuple[Any, ...]]] = field(default_factory=list)

    def add(self, actor: dramatiq.Actor[Any, Any], *args: Any) -> None:
        self.pending.append((actor, args))

    def flush(self, on_progress: ProgressCallback | None = None) -> int:
        """Send every collected message; `on_progress(done, total)` after each one."""
        sent, total = 0, len(self.pending)
        for done, (actor, args) in enumerate(self.pending, start=1):
            if enqueue_or_defer(actor, *args):
                sent += 1
            if on_progress:
                on_progress(done, total)
        self.pending.clear()
        return sent


def enqueue_or_defer(actor: dramatiq.Actor[Any, Any], *args: Any) -> bool:
    try:
        actor.send(*args)
    except (redis.RedisError, OSError, dramatiq.errors.BrokerError) as exc:
        log.warning(
            "enqueue deferred to the sweeper", actor=actor.actor_name, error=type(exc).__name__
        )
        return False
    return True
