"""Messages to send once the transaction that justified them has committed."""

from __future__ import annotations

from dataclasses import dataclass, field

import dramatiq
import redis

from leadline.logging import get_logger
from leadline.progress import ProgressCallback
from workers.runtime import SomeActor

log = get_logger(__name__)


BATCH_SIZE = 100


@dataclass
class AfterCommit:
    """Collects (actor, args) inside a transaction; `flush` sends them after COMMIT.

    A send that fails (Redis down) is only logged: the row it points at stays pending and the
    sweeper enqueues it later, so nothing is lost.

    `add_to_batch(actor, key, item)` collects items for an actor that takes `(key, [items])`:
    flush sends one message per key and BATCH_SIZE items, so a transaction that queued a
    thousand deliveries for one org sends ten messages, each claimed in one statement.
    """

    pending: list[tuple[SomeActor, tuple[object, ...]]] = field(default_factory=list)
    batches: dict[tuple[SomeActor, str], list[str]] = field(default_factory=dict)

    def add(self, actor: SomeActor, *args: object) -> None:
        self.pending.append((actor, args))

    def add_to_batch(self, actor: SomeActor, key: str, item: str) -> None:
        self.batches.setdefault((actor, key), []).append(item)

    def _batched_messages(self) -> None:
        for (actor, key), items in self.batches.items():
            for start in range(0, len(items), BATCH_SIZE):
                self.pending.append((actor, (key, items[start : start + BATCH_SIZE])))
        self.batches.clear()

    def flush(self, on_progress: ProgressCallback | None = None) -> int:
        """Send every collected message; `on_progress(done, total)` after each one."""
        self._batched_messages()
        sent, total = 0, len(self.pending)
        for done, (actor, args) in enumerate(self.pending, start=1):
            if enqueue_or_defer(actor, *args):
                sent += 1
            if on_progress:
                on_progress(done, total)
        self.pending.clear()
        return sent


def enqueue_or_defer(actor: SomeActor, *args: object) -> bool:
    try:
        actor.send(*args)
    except (redis.RedisError, OSError, dramatiq.errors.BrokerError) as exc:
        log.warning(
            "enqueue deferred to the sweeper", actor=actor.actor_name, error=type(exc).__name__
        )
        return False
    return True
