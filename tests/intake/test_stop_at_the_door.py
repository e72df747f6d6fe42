"""A STOP holds from its 2xx on: recorded by the intake with the event, whatever Redis does.

Scenario from chaos runs: a STOP answered while Redis was down waited for the sweeper, the
HELP and the new lead that came after it were processed first, and the person was texted.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import dramatiq
import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from leadline.sandbox import SandboxState
from models.alert_settings import update_program
from models.leads import phone_index
from models.messaging import Suppression
from models.tables import InboundEvent
from tasks.context import TaskContext
from tasks.sweeps import requeue_pending_events
from tests.helpers import wait_for
from tests.support.messaging import (
    captured_events,
    messages_settled,
    outbound_rows,
    queue_alerts,
    random_phone,
    sent_to,
)
from tests.support.services import Org
from tests.support.signing import twilio_form

pytestmark = pytest.mark.integration

SMS = "/hooks/twilio/sms"


@contextmanager
def redis_unreachable(broker: dramatiq.Broker) -> Iterator[None]:
    """The intake's broker points at a Redis that refuses connections (Redis stopped)."""
    from workers.runtime import build_broker, install_broker

    install_broker(build_broker("redis://127.0.0.1:9/0", "leadline-unreachable"))
    try:
        yield
    finally:
        install_broker(broker)


def post_sms(client: TestClient, to: str, sender: str, body: str) -> Any:
    params = [("MessageSid", "SM" + secrets.token_hex(16)), ("From", sender), ("To", to)]
    form, headers = twilio_form([*params, ("Body", body)], SMS)
    return client.post(SMS, content=form, headers=headers)


def suppressed(context: TaskContext, org_id: uuid.UUID, phone: str) -> bool:
    with context.db.tenant(org_id) as session:
        bidx = phone_index(context.keys.cipher(session, org_id), phone)
        rows = session.scalars(select(Suppression).where(Suppression.recipient_bidx == bidx))
        return rows.first() is not None


def events(context: TaskContext, org_id: uuid.UUID) -> list[InboundEvent]:
    with context.db.tenant(org_id) as session:
        return list(session.scalars(select(InboundEvent).order_by(InboundEvent.received_at)))


def all_processed(context: TaskContext, org_id: uuid.UUID, count: int) -> bool:
    done = [e for e in events(context, org_id) if e.status == "processed"]
    return len(done) == count


def sweep_pending(context: TaskContext) -> int:
    """What the scheduler's inbox sweep does once the events are old enough."""
    from datetime import timedelta

    later = context.clock() + timedelta(
        seconds=context.settings.leadline_sweep_pending_after_seconds
    )
    return requeue_pending_events(context, later + timedelta(seconds=1))


def to_person(context: TaskContext, org_id: uuid.UUID, phone: str) -> list[Any]:
    with context.db.tenant(org_id) as session:
        bidx = phone_index(context.keys.cipher(session, org_id), phone)
    return [row for row in outbound_rows(context, org_id) if row.recipient_bidx == bidx]


def test_stop_while_redis_is_down_blocks_the_help_reply_and_autoreply_after_it(
    client: TestClient,
    broker: dramatiq.Broker,
    worker: dramatiq.Worker,
    org_number: tuple[Org, str],
    context: TaskContext,
    sandbox_state: SandboxState,
) -> None:
    org, number = org_number
    person = random_phone()
    with context.db.tenant(org.id) as session:
        update_program(session, org.id, autoreply=True, actor="test")

    with captured_events() as published, redis_unreachable(broker):
        stop = post_sms(client, number, person, "STOP")
    assert stop.status_code == 200
    assert suppressed(context, org.id, person)
    assert [kind for kind, _ in published] == ["optout.changed"]
    [stop_event] = events(context, org.id)
    assert stop_event.status == "pending" and stop_event.optout_recorded_at is not None

    # Redis is back: the HELP and a new consenting lead are processed before the STOP event.
    assert post_sms(client, number, person, "HELP").status_code == 200
    lead = {"phone": person, "name": "After Stop", "consent": {"sms": True}}
    assert client.post("/v1/leads", json=lead, headers=org.auth).status_code == 202
    wait_for(lambda: all_processed(context, org.id, 2))
    assert sweep_pending(context) >= 1
    wait_for(lambda: all_processed(context, org.id, 3))
    wait_for(lambda: messages_settled(context, org.id, len(outbound_rows(context, org.id))))

    purposes = sorted((row.purpose, row.state) for row in to_person(context, org.id, person))
    assert purposes == [("help_reply", "blocked"), ("lead_autoreply", "blocked")]
    assert sent_to(sandbox_state, person) == []
    assert suppressed(context, org.id, person)


def test_worker_does_not_record_a_door_stop_twice(
    client: TestClient,
    worker: dramatiq.Worker,
    org_number: tuple[Org, str],
    context: TaskContext,
) -> None:
    org, number = org_number
    person = random_phone()
    with captured_events() as published:
        assert post_sms(client, number, person, "please stop texting me").status_code == 200
        wait_for(lambda: all_processed(context, org.id, 1))
    assert [(kind, data["reason"]) for kind, data in published] == [("optout.changed", "free_text")]
    assert suppressed(context, org.id, person)


def test_start_after_a_door_stop_lifts_it_in_order(
    client: TestClient,
    broker: dramatiq.Broker,
    worker: dramatiq.Worker,
    org_number: tuple[Org, str],
    context: TaskContext,
    sandbox_state: SandboxState,
) -> None:
    org, number = org_number
    person = random_phone()
    with redis_unreachable(broker):
        assert post_sms(client, number, person, "STOP").status_code == 200
    assert post_sms(client, number, person, "START").status_code == 200
    wait_for(lambda: not suppressed(context, org.id, person))

    # The STOP event is processed last, by the sweeper: the later START still wins.
    assert sweep_pending(context) >= 1
    wait_for(lambda: all_processed(context, org.id, 2))
    assert not suppressed(context, org.id, person)
    queue_alerts(context, org.id, person, 1)
    wait_for(lambda: sent_to(sandbox_state, person))


def test_a_stop_after_an_unprocessed_start_keeps_the_suppression(
    client: TestClient,
    broker: dramatiq.Broker,
    worker: dramatiq.Worker,
    org_number: tuple[Org, str],
    context: TaskContext,
) -> None:
    org, number = org_number
    person = random_phone()
    with redis_unreachable(broker):
        assert post_sms(client, number, person, "START").status_code == 200
        assert post_sms(client, number, person, "STOP").status_code == 200
    assert suppressed(context, org.id, person)

    assert sweep_pending(context) >= 2
    wait_for(lambda: all_processed(context, org.id, 2))
    assert suppressed(context, org.id, person)


def test_a_stop_the_worker_records_counts_from_when_it_arrived(
    client: TestClient,
    broker: dramatiq.Broker,
    org_number: tuple[Org, str],
    context: TaskContext,
) -> None:
    """A STOP stored without the door step (before it existed) and then a START: processed in
    that order by the worker, the START still lifts the STOP, which came first."""
    from sqlalchemy import delete, update

    from tasks.after_commit import AfterCommit
    from tasks.inbound_events import process_stored_event

    org, number = org_number
    person = random_phone()
    with redis_unreachable(broker):
        assert post_sms(client, number, person, "STOP").status_code == 200
        with context.db.tenant(org.id) as session:  # as stored before the door step existed
            session.execute(delete(Suppression))
            session.execute(update(InboundEvent).values(optout_recorded_at=None))
        assert post_sms(client, number, person, "START").status_code == 200
    stop_event, start_event = events(context, org.id)

    for event in (stop_event, start_event):
        assert process_stored_event(context, org.id, event.id, AfterCommit())
        if event is stop_event:
            assert suppressed(context, org.id, person)

    assert not suppressed(context, org.id, person)


def test_stop_start_stop_ends_opted_out_whatever_order_the_worker_sees(
    client: TestClient,
    broker: dramatiq.Broker,
    worker: dramatiq.Worker,
    org_number: tuple[Org, str],
    context: TaskContext,
) -> None:
    """The second STOP finds the first one's suppression at the door: it must still count
    from its own arrival, or the START between them, processed late, lifts it."""
    org, number = org_number
    person = random_phone()
    with redis_unreachable(broker):
        for body in ("STOP", "START", "STOP"):
            assert post_sms(client, number, person, body).status_code == 200
    assert suppressed(context, org.id, person)

    assert sweep_pending(context) >= 3
    wait_for(lambda: all_processed(context, org.id, 3))
    assert suppressed(context, org.id, person)
