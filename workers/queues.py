"""Queue statistics: the same four figures on both brokers (workers/brokers.py reads them).

waiting    Redis: ids in the queue's list. RabbitMQ: ready messages in the queue (passive
           queue declare).
delayed    Redis: ids in `<queue>.DQ`, plus those a worker already holds until their time.
           RabbitMQ: ready messages in `<queue>.DQ` only; a worker holds those it took,
           unacknowledged, until their time, and AMQP does not count those.
in flight  Redis: ids workers took and did not acknowledge yet (the `__acks__` sets).
           RabbitMQ: not known (None; the ops page shows a dash): AMQP tells ready messages
           only; the unacknowledged ones are shown by the management plugin, which Leadline
           does not need.
dead       Dramatiq's own copies in `<queue>.XQ`, kept 7 days (Redis: a sorted set; RabbitMQ:
           ready messages of a queue with a 7-day message TTL).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from leadline.jsondata import JsonObject


@dataclass(frozen=True)
class QueueStats:
    queue: str
    waiting: int
    delayed: int
    in_flight: int | None
    dead: int

    def as_dict(self) -> JsonObject:
        return asdict(self)
