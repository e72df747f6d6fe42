"""Queue depths read from Dramatiq's Redis keys (see dramatiq/brokers/redis/dispatch.lua):

<ns>:<queue>                  list of waiting message ids
<ns>:<queue>.DQ               list of delayed (retrying) message ids
<ns>:__acks__.<worker>.<q>    set of ids a worker has taken and not yet acked (in flight)
<ns>:<queue>.XQ               sorted set of dead message ids (kept 7 days)
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.common import dq_name, xq_name


@dataclass(frozen=True)
class QueueStats:
    queue: str
    waiting: int
    delayed: int
    in_flight: int
    dead: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def queue_stats(broker: dramatiq.Broker) -> list[QueueStats]:
    """One row per declared queue; empty for brokers that are not Redis."""
    if not isinstance(broker, RedisBroker):
        return []
    queues = sorted(broker.get_declared_queues())
    in_flight = in_flight_counts(broker)
    pipeline = broker.client.pipeline()
    for queue in queues:
        pipeline.llen(f"{broker.namespace}:{queue}")
        pipeline.llen(f"{broker.namespace}:{dq_name(queue)}")
        pipeline.zcard(f"{broker.namespace}:{xq_name(queue)}")
    counts = pipeline.execute()
    return [
        QueueStats(
            queue=queue,
            waiting=int(counts[3 * i]),
            delayed=int(counts[3 * i + 1]) + in_flight[dq_name(queue)],
            in_flight=in_flight[queue],
            dead=int(counts[3 * i + 2]),
        )
        for i, queue in enumerate(queues)
    ]


def in_flight_counts(broker: RedisBroker) -> Counter[str]:
    """Messages held by workers, per queue name as Dramatiq writes it (`q` or `q.DQ`)."""
    prefix = f"{broker.namespace}:__acks__."
    keys = [
        key.decode() if isinstance(key, bytes) else str(key)
        for key in broker.client.scan_iter(match=f"{prefix}*", count=500)
    ]
    pipeline = broker.client.pipeline()
    for key in keys:
        pipeline.scard(key)
    counts: Counter[str] = Counter()
    for key, size in zip(keys, pipeline.execute(), strict=True):
        _worker, _, queue = key[len(prefix) :].partition(".")
        if queue:
            counts[queue] += int(size)
    return counts
