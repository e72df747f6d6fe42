"""Deliveries queued by one transaction leave as one batched message and are claimed in one
statement: every one is delivered once; a delivery not due yet in the batch waits for its
time, and one whose endpoint was disabled meanwhile is cancelled, as single claims do."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta

import dramatiq
import pytest
from sqlalchemy import update

from models.webhooks import WebhookDelivery, WebhookEndpoint
from tasks.after_commit import AfterCommit
from tasks.context import TaskContext
from tasks.domain_events import DomainEvent, publish
from tasks.webhooks.delivery import claim_deliveries
from tests.helpers import wait_for
from tests.support.services import MakeOrg
from tests.support.webhooks import (
    DEV_WEBHOOKS,
    add_endpoint,
    deliveries,
    running_receiver,
    swapped_settings,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


@pytest.fixture
def dev(context: TaskContext) -> Iterator[TaskContext]:
    with swapped_settings(context, **DEV_WEBHOOKS) as swapped:
        yield swapped


def fan_out(context: TaskContext, org_id: uuid.UUID, count: int) -> AfterCommit:
    after_commit = AfterCommit()
    with context.db.tenant(org_id) as session:
        cipher = context.keys.cipher(session, org_id)
        for _ in range(count):
            data = {"lead_id": str(uuid.uuid4())}
            publish(
                DomainEvent(session, cipher, "lead.created", data, after_commit, context.clock())
            )
    return after_commit


def test_one_transaction_one_message_every_delivery_once(
    dev: TaskContext, worker: dramatiq.Worker, make_org: MakeOrg
) -> None:
    org = make_org()
    with running_receiver() as rx:
        add_endpoint(dev, org.id, rx.url)
        after_commit = fan_out(dev, org.id, 5)
        assert after_commit.flush() == 1  # one deliver_webhooks message for the five
        wait_for(lambda: len([d for d in deliveries(dev, org.id) if d.state == "delivered"]) == 5)
        ids = {
            request.headers["webhook-id"]
            for request in wait_for(lambda: len(rx.seen()) >= 5 and rx.seen())
        }
    assert len(rx.seen()) == 5 and len(ids) == 5
    assert {d.attempt_count for d in deliveries(dev, org.id)} == {1}


def test_not_due_and_disabled_rows_in_a_batch(dev: TaskContext, make_org: MakeOrg) -> None:
    org = make_org()
    kept, _ = add_endpoint(dev, org.id, "http://127.0.0.1:9/kept")
    gone, _ = add_endpoint(dev, org.id, "http://127.0.0.1:9/gone")
    fan_out(dev, org.id, 2)  # the messages are never sent: the claim is called directly
    rows = deliveries(dev, org.id)
    of_kept = [row.id for row in rows if row.endpoint_id == kept]
    later, now = of_kept[0], dev.clock()
    with dev.db.tenant(org.id) as session:
        session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id == later)
            .values(next_attempt_at=now + timedelta(hours=1))
        )
        session.execute(
            update(WebhookEndpoint).where(WebhookEndpoint.id == gone).values(enabled=False)
        )
    with dev.db.tenant(org.id) as session:
        cipher = dev.keys.cipher(session, org.id)
        claims, not_due = claim_deliveries(session, cipher, [row.id for row in rows], now)
    assert [claim.delivery_id for claim in claims] == [of_kept[1]]
    assert set(not_due) == {later}
    states = {d.id: d.state for d in deliveries(dev, org.id)}
    assert states[later] == "pending" and states[of_kept[1]] == "delivering"
    assert [states[row.id] for row in rows if row.endpoint_id == gone] == ["cancelled"] * 2
