"""The two brokers Leadline runs its actors on, behind one interface.

`LEADLINE_BROKER_URL` picks one: `amqp://` or `amqps://` is Dramatiq's RabbitMQ broker (durable
queues, publisher confirms on), anything else Dramatiq's Redis broker (the default, on
`LEADLINE_REDIS_URL`). Both are Dramatiq brokers, so actors, retries and workers do not know
which one runs. What Leadline needs beyond Dramatiq's `Broker` is `LeadlineBroker`:

- `queue_stats()`: waiting, delayed, in flight and dead per queue (workers/queues.py says what
  each figure means on each broker);
- `dead_letter_key()` and `discard_dead_letter()`: Dramatiq's own copy of a dead message, in
  `<queue>.XQ` on both brokers, removed when an operator replays or purges it (workers/dlq.py);
- `check_connection()`: can this process reach the broker now (`/readyz`, `leadline status`);
- `consume()` reports each poll of a consumer loop to the heartbeat behind the worker's
  `/healthz` (workers/heartbeat.py).

Draining on shutdown needs nothing of its own: the Drain middleware runs on both, and messages
a stopping worker holds go back to their queue (Redis: Dramatiq requeues them; RabbitMQ: the
server returns unacknowledged messages when the consumer's connection closes).

Names on a shared server: Redis keys start with `<namespace>:`; RabbitMQ queues are named
`<namespace>:<queue>`, `<namespace>:<queue>.DQ` and `<namespace>:<queue>.XQ` on the AMQP
wire, while Dramatiq, dead-letter rows and the ops page keep the plain queue name.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import ClassVar
from urllib.parse import parse_qs, urlsplit

import dramatiq
import pika
import pika.exceptions
import redis
from dramatiq.broker import Consumer, MessageProxy
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.brokers.redis import RedisBroker
from dramatiq.common import dq_name, xq_name
from dramatiq.errors import DecodeError
from dramatiq.middleware import Middleware
from pika.adapters.blocking_connection import BlockingChannel
from pika.frame import Method
from redis.backoff import NoBackoff
from redis.retry import Retry

from workers.heartbeat import ConsumerHeartbeat, HeartbeatConsumer
from workers.queues import QueueStats

OK = "ok"
AMQP_SCHEMES = ("amqp", "amqps")
NOT_FOUND = 404
# A dead-letter queue is read through to find one message; past this many it gives up.
MAX_DEAD_LETTER_SCAN = 100_000


class LeadlineBroker(dramatiq.Broker, ABC):
    """A Dramatiq broker plus what Leadline's operators and probes need (module docstring)."""

    kind: ClassVar[str]

    @property
    def heartbeat(self) -> ConsumerHeartbeat:
        return next(m for m in self.middleware if isinstance(m, ConsumerHeartbeat))

    def consume(self, queue_name: str, prefetch: int = 1, timeout: int = 5000) -> Consumer:
        self.heartbeat.beat()  # a loop restarting after a broker outage is still turning
        return HeartbeatConsumer(self.open_consumer(queue_name, prefetch, timeout), self.heartbeat)

    @abstractmethod
    def open_consumer(self, queue_name: str, prefetch: int, timeout: int) -> Consumer:
        """The broker's own consumer for `queue_name`."""

    @abstractmethod
    def queue_stats(self) -> list[QueueStats]:
        """One row per declared queue, sorted by name."""

    @abstractmethod
    def dead_letter_key(self, message: MessageProxy) -> str | None:
        """The id under which this broker keeps the dead copy of `message` in `.XQ`."""

    @abstractmethod
    def discard_dead_letter(self, queue: str, key: str) -> bool:
        """Remove the dead copy `key` from `<queue>.XQ`; False when it is not there."""

    @abstractmethod
    def check_connection(self) -> str:
        """ "ok" when the broker answers now, without retries; raises otherwise."""


class RedisLeadlineBroker(LeadlineBroker, RedisBroker):
    """Dramatiq's Redis broker. Its keys (see dramatiq/brokers/redis/dispatch.lua):

    <ns>:<queue>                  list of waiting message ids
    <ns>:<queue>.DQ               list of delayed (retrying) message ids
    <ns>:__acks__.<worker>.<q>    set of ids a worker has taken and not yet acked (in flight)
    <ns>:<queue>.XQ               sorted set of dead message ids (kept 7 days), bodies in .msgs
    """

    kind = "redis"

    def __init__(self, url: str, namespace: str, middleware: list[Middleware]) -> None:
        RedisBroker.__init__(  # type: ignore[no-untyped-call]
            self,
            url=url,
            namespace=namespace,
            middleware=middleware,
            socket_connect_timeout=2,
            socket_timeout=10,
            health_check_interval=30,
        )
        self.url = url

    def open_consumer(self, queue_name: str, prefetch: int, timeout: int) -> Consumer:
        return RedisBroker.consume(self, queue_name, prefetch, timeout)

    def queue_stats(self) -> list[QueueStats]:
        queues = sorted(self.get_declared_queues())
        in_flight = self._in_flight_counts()
        pipeline = self.client.pipeline()
        for queue in queues:
            pipeline.llen(f"{self.namespace}:{queue}")
            pipeline.llen(f"{self.namespace}:{dq_name(queue)}")
            pipeline.zcard(f"{self.namespace}:{xq_name(queue)}")
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

    def _in_flight_counts(self) -> Counter[str]:
        """Messages held by workers, per queue name as Dramatiq writes it (`q` or `q.DQ`)."""
        prefix = f"{self.namespace}:__acks__."
        keys = [
            key.decode() if isinstance(key, bytes) else str(key)
            for key in self.client.scan_iter(match=f"{prefix}*", count=500)
        ]
        pipeline = self.client.pipeline()
        for key in keys:
            pipeline.scard(key)
        counts: Counter[str] = Counter()
        for key, size in zip(keys, pipeline.execute(), strict=True):
            _worker, _, queue = key[len(prefix) :].partition(".")
            if queue:
                counts[queue] += int(size)
        return counts

    def dead_letter_key(self, message: MessageProxy) -> str | None:
        # Each enqueue gets its own id in Redis, so a retried message has a new one each time.
        key = message.options.get("redis_message_id")
        return str(key) if key is not None else None

    def discard_dead_letter(self, queue: str, key: str) -> bool:
        dead_queue = f"{self.namespace}:{xq_name(queue)}"
        pipeline = self.client.pipeline()
        pipeline.zrem(dead_queue, key)
        pipeline.hdel(f"{dead_queue}.msgs", key)
        removed, _bodies = pipeline.execute()
        return bool(removed)

    def check_connection(self) -> str:
        return ping_redis(self.url)


class RabbitmqLeadlineBroker(LeadlineBroker, RabbitmqBroker):
    """Dramatiq's RabbitMQ broker with publisher confirms, on namespaced queue names.

    Dramatiq declares every queue durable and publishes persistent messages; a message rejected
    for good is dead-lettered by the server into `<queue>.XQ` (kept 7 days by a queue TTL).
    """

    kind = "rabbitmq"

    def __init__(self, url: str, namespace: str, middleware: list[Middleware]) -> None:
        self.prefix = f"{namespace}:" if namespace else ""
        self.url = url
        RabbitmqBroker.__init__(self, middleware=middleware, confirm_delivery=True)
        self.parameters = amqp_parameters(url, probe=False)

    def amqp_name(self, name: str) -> str:
        """The name of a Dramatiq queue (`q`, `q.DQ`, `q.XQ`) on the AMQP wire."""
        return self.prefix + name

    # Dramatiq's broker talks to RabbitMQ through `self.channel`; every queue name it sends
    # there goes through `amqp_name`, so its enqueue, declare and purge logic stays its own.
    @property
    def channel(self) -> NamespacedChannel:
        self._drop_lost_connection()
        return NamespacedChannel(RabbitmqBroker.channel.fget(self), self.amqp_name)  # type: ignore[attr-defined]

    @channel.deleter
    def channel(self) -> None:
        RabbitmqBroker.channel.fdel(self)  # type: ignore[attr-defined]

    def _drop_lost_connection(self) -> None:
        """Forget this thread's connection if the server closed it meanwhile.

        A thread that publishes now and then (an intake request thread, the main thread)
        keeps its connection between uses without answering the server's heartbeats, and the
        server drops it after two missed ones. Dramatiq's enqueue reconnects after such a
        failure, but its purge and declare do not; handling pending frames here (heartbeats
        included) finds the loss before any of them uses the connection."""
        connection = getattr(self.state, "connection", None)
        if connection is None:
            return
        try:
            connection.process_data_events(time_limit=0)
        except pika.exceptions.AMQPError:
            del self.connection

    def _build_queue_arguments(self, queue_name: str) -> dict[str, object]:
        arguments: dict[str, object] = super()._build_queue_arguments(queue_name)  # type: ignore[no-untyped-call]
        arguments["x-dead-letter-routing-key"] = self.amqp_name(xq_name(queue_name))
        return arguments

    def open_consumer(self, queue_name: str, prefetch: int, timeout: int) -> Consumer:
        self.declare_queue(queue_name, ensure=True)
        consumer: Consumer = self.consumer_class(
            self, self.amqp_name(queue_name), prefetch, timeout
        )
        # Dramatiq's consumer names the queue to re-declare after a 404 by this attribute.
        consumer.queue_name = queue_name  # type: ignore[attr-defined]
        return consumer

    @contextmanager
    def probe_channel(self) -> Iterator[BlockingChannel]:
        """A channel on a connection of its own, with short timeouts, closed afterwards."""
        connection = pika.BlockingConnection(amqp_parameters(self.url, probe=True))
        try:
            yield connection.channel()
        finally:
            if connection.is_open:
                connection.close()

    def queue_stats(self) -> list[QueueStats]:
        queues = sorted(self.get_declared_queues())
        with self.probe_channel() as channel:
            counts = ChannelCounter(channel)
            return [
                QueueStats(
                    queue=queue,
                    waiting=counts.ready(self.amqp_name(queue)),
                    delayed=counts.ready(self.amqp_name(dq_name(queue))),
                    in_flight=None,
                    dead=counts.ready(self.amqp_name(xq_name(queue))),
                )
                for queue in queues
            ]

    def dead_letter_key(self, message: MessageProxy) -> str | None:
        return message.message_id

    def discard_dead_letter(self, queue: str, key: str) -> bool:
        """Read `.XQ` until the message is found and acknowledge only that one.

        The others stay unacknowledged until the channel closes, and RabbitMQ then puts each
        back in its place, so no dead letter is lost or reordered."""
        with self.probe_channel() as channel:
            dead_queue = self.amqp_name(xq_name(queue))
            counter = ChannelCounter(channel)
            for _ in range(min(counter.ready(dead_queue), MAX_DEAD_LETTER_SCAN)):
                method, _properties, body = counter.channel.basic_get(dead_queue, auto_ack=False)
                if method is None:
                    return False
                if message_id_of(body) == key:
                    counter.channel.basic_ack(method.delivery_tag)
                    return True
        return False

    def check_connection(self) -> str:
        with self.probe_channel():
            return OK

    def delete_queues(self) -> None:
        """Delete every queue this broker declared, with its delayed and dead queues and their
        messages: for namespaces made for one run (the demo, the tests)."""
        with self.probe_channel() as channel:
            for queue in sorted(self.get_declared_queues()):
                for name in (queue, dq_name(queue), xq_name(queue)):
                    channel.queue_delete(self.amqp_name(name))


class NamespacedChannel:
    """A pika channel whose queue names (queue_declare, queue_purge, basic_publish's routing
    key) are rewritten to their namespaced AMQP names; everything else passes through."""

    def __init__(self, channel: BlockingChannel, amqp_name: Callable[[str], str]) -> None:
        self._channel = channel
        self._amqp_name = amqp_name

    def queue_declare(self, queue: str, **options: object) -> Method:
        return self._channel.queue_declare(queue=self._amqp_name(queue), **options)

    def queue_purge(self, queue: str) -> Method:
        return self._channel.queue_purge(self._amqp_name(queue))

    def basic_publish(
        self, exchange: str, routing_key: str, body: bytes, **options: object
    ) -> None:
        self._channel.basic_publish(
            exchange=exchange, routing_key=self._amqp_name(routing_key), body=body, **options
        )

    def __getattr__(self, name: str) -> object:
        return getattr(self._channel, name)


class ChannelCounter:
    """Ready-message counts by passive declare. A queue nobody created yet counts 0: the
    server closes the channel on that 404, so a new channel is opened for the next question."""

    def __init__(self, channel: BlockingChannel) -> None:
        self.channel = channel

    def ready(self, amqp_queue: str) -> int:
        try:
            answer = self.channel.queue_declare(queue=amqp_queue, passive=True)
        except pika.exceptions.ChannelClosedByBroker as exc:
            if exc.reply_code != NOT_FOUND:
                raise
            self.channel = self.channel.connection.channel()
            return 0
        return int(answer.method.message_count)


def message_id_of(body: bytes) -> str | None:
    try:
        return dramatiq.Message.decode(body).message_id
    except DecodeError:
        return None


def amqp_parameters(url: str, *, probe: bool) -> pika.URLParameters:
    """Connection parameters from the URL, with timeouts it does not set itself: a broker that
    drops packets must not hang an intake request (2 s) or a probe (1 s)."""
    parameters = pika.URLParameters(url)
    given = parse_qs(urlsplit(url).query)
    seconds = 1.0 if probe else 2.0
    defaults = {
        "socket_timeout": seconds,
        "stack_timeout": 2 * seconds,
        "blocked_connection_timeout": 10 * seconds,
        "connection_attempts": 1,
    }
    for name, value in defaults.items():
        if name not in given:
            setattr(parameters, name, value)
    return parameters


def ping_redis(url: str) -> str:
    """ "ok" when the Redis at `url` answers now; no client-side retries (a probe reports what
    it finds)."""
    client = redis.Redis.from_url(
        url, socket_connect_timeout=1, socket_timeout=1, retry=Retry(NoBackoff(), 0)
    )
    try:
        client.ping()
    finally:
        client.close()
    return OK


def is_amqp_url(url: str) -> bool:
    return urlsplit(url).scheme in AMQP_SCHEMES


def build_leadline_broker(url: str, namespace: str, middleware: list[Middleware]) -> LeadlineBroker:
    if is_amqp_url(url):
        return RabbitmqLeadlineBroker(url, namespace, middleware)
    return RedisLeadlineBroker(url, namespace, middleware)


def current_broker() -> LeadlineBroker:
    """The broker installed in this process (workers/runtime.py install_broker)."""
    broker = dramatiq.get_broker()
    if not isinstance(broker, LeadlineBroker):
        raise TypeError("no Leadline broker is installed (tasks.context.open_runtime does it)")
    return broker
