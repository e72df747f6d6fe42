"""On RabbitMQ every queue Leadline makes is named after its namespace, and a run's queues
can be deleted, every one of them, afterwards (what the tests do on the shared server)."""

from __future__ import annotations

import uuid
from typing import Any

import dramatiq
import pika.exceptions
import pytest

pytestmark = pytest.mark.integration


def ready_in(broker: Any, amqp_queue: str) -> int | None:
    """Ready messages in the queue of that exact AMQP name; None when there is no such queue."""
    with broker.probe_channel() as channel:
        try:
            return int(channel.queue_declare(amqp_queue, passive=True).method.message_count)
        except pika.exceptions.ChannelClosedByBroker as exc:
            assert exc.reply_code == 404
            return None


def test_queues_carry_the_namespace_and_are_deleted_with_it(amqp_url: str) -> None:
    from workers.runtime import build_broker

    namespace = f"leadline-names-{uuid.uuid4().hex[:8]}"
    broker: Any = build_broker(amqp_url, namespace)
    queue = "names_probe"
    actor = dramatiq.Actor(
        lambda: None,
        broker=broker,
        actor_name="names_probe",
        queue_name=queue,
        priority=0,
        options={},
    )
    try:
        actor.send()
        actor.send_with_options(delay=60_000)
        assert [s.as_dict() for s in broker.queue_stats()] == [
            {"queue": queue, "waiting": 1, "delayed": 1, "in_flight": None, "dead": 0}
        ]
        assert ready_in(broker, f"{namespace}:{queue}") == 1
        assert ready_in(broker, f"{namespace}:{queue}.DQ") == 1
        assert ready_in(broker, f"{namespace}:{queue}.XQ") == 0
        assert ready_in(broker, queue) is None  # nothing lands outside the namespace
    finally:
        broker.delete_queues()
    assert [ready_in(broker, f"{namespace}:{queue}{end}") for end in ("", ".DQ", ".XQ")] == [
        None
    ] * 3
    broker.close()


def test_a_connection_the_server_dropped_is_replaced_before_it_is_used(amqp_url: str) -> None:
    import socket

    from workers.runtime import build_broker

    broker: Any = build_broker(amqp_url, f"leadline-lost-{uuid.uuid4().hex[:8]}")
    actor = dramatiq.Actor(
        lambda: None,
        broker=broker,
        actor_name="lost_probe",
        queue_name="lost_probe",
        priority=0,
        options={},
    )
    try:
        actor.send()
        lost = broker.connection
        # What the server's reset after missed heartbeats looks like from this side.
        lost._impl._transport._sock.shutdown(socket.SHUT_RDWR)
        broker.flush_all()  # Dramatiq's purge would fail on the lost connection
        actor.send()
        assert broker.connection is not lost
        assert [s.waiting for s in broker.queue_stats()] == [1]
    finally:
        broker.delete_queues()
        broker.close()
