"""Stripe webhooks: verified with a 300 s tolerance, routed by customer, applied in order."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import dramatiq
import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from models.billing import OrgBilling, link_stripe_customer
from models.tables import AuditEntry, Organization
from tests.helpers import wait_for
from tests.support.intake import events_of, events_settled
from tests.support.services import MakeOrg, Org
from tests.support.signing import STRIPE_SECRET, stripe_event, stripe_headers

if TYPE_CHECKING:
    from tasks.context import TaskContext

pytestmark = pytest.mark.integration

PATH = "/hooks/stripe"


@pytest.fixture
def customer(context: TaskContext, make_org: MakeOrg) -> tuple[Org, str]:
    org = make_org()
    customer_id = f"cus_{uuid.uuid4().hex[:14]}"
    with context.db.tenant(org.id) as session:
        link_stripe_customer(session, org.id, customer_id, actor="test")
    return org, customer_id


def send(client: TestClient, event: dict[str, Any], **sign: Any) -> Any:
    body = json.dumps(event).encode()
    return client.post(PATH, content=body, headers=stripe_headers(body, **sign))


def processed_in_turn(
    client: TestClient, context: TaskContext, org_id: uuid.UUID, *events: dict[str, Any]
) -> None:
    """Each event answered 200 and processed before the next one is sent."""
    for count, event in enumerate(events, start=1):
        assert send(client, event).status_code == 200
        wait_for(lambda settled=count: events_settled(context, org_id, settled))


def billing_of(context: TaskContext, org_id: uuid.UUID) -> tuple[OrgBilling, Organization]:
    with context.db.tenant(org_id) as session:
        billing = session.scalars(select(OrgBilling)).one()
        org = session.get(Organization, org_id)
        assert org is not None
        return billing, org


def test_subscription_deleted_cancels_and_schedules_deletion(
    client: TestClient, worker: dramatiq.Worker, customer: tuple[Org, str], context: TaskContext
) -> None:
    org, customer_id = customer
    created = int(time.time()) - 60
    event = stripe_event("customer.subscription.deleted", customer_id, created)

    processed_in_turn(client, context, org.id, event)

    billing, organization = billing_of(context, org.id)
    cancelled_at = datetime.fromtimestamp(created, tz=UTC)
    assert (billing.status, organization.status) == ("cancelled", "cancelled")
    assert organization.deletion_due_at == cancelled_at + timedelta(days=30)
    assert billing.last_event_id == event["id"]
    [stored] = events_of(context, org.id)
    assert (stored.source, stored.external_id, stored.status) == (
        "stripe",
        event["id"],
        "processed",
    )


def test_replayed_event_is_one_row_and_one_effect(
    client: TestClient, worker: dramatiq.Worker, customer: tuple[Org, str], context: TaskContext
) -> None:
    org, customer_id = customer
    event = stripe_event("invoice.payment_failed", customer_id, int(time.time()))
    assert send(client, event).status_code == 200
    assert send(client, event).status_code == 200
    wait_for(lambda: events_settled(context, org.id, 1))
    assert billing_of(context, org.id)[0].status == "past_due"
    with context.db.tenant(org.id) as session:
        applied = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "billing.event_applied")
        ).all()
    assert len(applied) == 1


def test_out_of_order_pair_leaves_the_newer_state(
    client: TestClient, worker: dramatiq.Worker, customer: tuple[Org, str], context: TaskContext
) -> None:
    org, customer_id = customer
    now = int(time.time())
    newer = stripe_event("customer.subscription.deleted", customer_id, now - 10)
    older = stripe_event("customer.subscription.updated", customer_id, now - 100, status="active")

    processed_in_turn(client, context, org.id, newer, older)

    billing, organization = billing_of(context, org.id)
    assert (billing.status, organization.status) == ("cancelled", "cancelled")
    assert billing.last_event_id == newer["id"]


def test_a_newer_subscription_lifts_a_cancellation(
    client: TestClient, worker: dramatiq.Worker, customer: tuple[Org, str], context: TaskContext
) -> None:
    org, customer_id = customer
    now = int(time.time())
    cancelled = stripe_event("customer.subscription.deleted", customer_id, now - 100)
    renewed = stripe_event("customer.subscription.created", customer_id, now - 5)
    processed_in_turn(client, context, org.id, cancelled, renewed)
    billing, organization = billing_of(context, org.id)
    assert (billing.status, organization.status, organization.deletion_due_at) == (
        "active",
        "active",
        None,
    )


def test_several_v1_signatures_one_valid_is_accepted(
    client: TestClient, customer: tuple[Org, str], context: TaskContext
) -> None:
    org, customer_id = customer
    body = json.dumps(
        stripe_event("invoice.payment_failed", customer_id, int(time.time()))
    ).encode()
    good = stripe_headers(body)["Stripe-Signature"]
    timestamp, valid = good.split(",")
    header = f"{timestamp},v1={'0' * 64},{valid},v0=ignored"
    response = client.post(
        PATH, content=body, headers={"Stripe-Signature": header, "Content-Type": "application/json"}
    )
    assert response.status_code == 200
    assert len(events_of(context, org.id)) == 1


def test_other_schemes_are_ignored(
    client: TestClient, customer: tuple[Org, str], context: TaskContext
) -> None:
    org, customer_id = customer
    body = json.dumps(
        stripe_event("invoice.payment_failed", customer_id, int(time.time()))
    ).encode()
    timestamp, valid = stripe_headers(body)["Stripe-Signature"].split(",")
    only_v0 = f"{timestamp},{valid.replace('v1=', 'v0=')}"
    headers = {"Stripe-Signature": only_v0, "Content-Type": "application/json"}
    assert client.post(PATH, content=body, headers=headers).status_code == 403
    assert events_of(context, org.id) == []


def test_bad_stale_or_missing_signatures_are_403_and_store_nothing(
    client: TestClient, customer: tuple[Org, str], context: TaskContext
) -> None:
    org, customer_id = customer
    event = stripe_event("customer.subscription.deleted", customer_id, int(time.time()))
    body = json.dumps(event).encode()
    cases = [
        (body.replace(b"deleted", b"updated"), stripe_headers(body)),  # tampered
        (body, stripe_headers(body, secret=STRIPE_SECRET + "x")),  # wrong secret
        (body, stripe_headers(body, timestamp=int(time.time()) - 301)),  # stale
        (body, stripe_headers(body, timestamp=int(time.time()) + 600)),  # 10 min ahead
        (body, {"Content-Type": "application/json"}),  # missing
        (body, {"Stripe-Signature": "t=abc,v1=zz", "Content-Type": "application/json"}),
    ]
    for content, headers in cases:
        response = client.post(PATH, content=content, headers=headers)
        assert response.status_code == 403
        assert response.json() == {"error": "verification failed"}
    assert events_of(context, org.id) == []


def test_a_timestamp_slightly_ahead_is_accepted_but_not_ten_minutes_ahead(
    client: TestClient, customer: tuple[Org, str], context: TaskContext
) -> None:
    org, customer_id = customer
    now = int(time.time())
    ahead = stripe_event("customer.subscription.updated", customer_id, now)
    body = json.dumps(ahead).encode()
    future = client.post(PATH, content=body, headers=stripe_headers(body, timestamp=now + 600))
    assert future.status_code == 403
    assert events_of(context, org.id) == []
    skewed = client.post(PATH, content=body, headers=stripe_headers(body, timestamp=now + 30))
    assert skewed.status_code == 200  # a clock a little ahead is within the tolerance
    assert len(events_of(context, org.id)) == 1


def test_unknown_customer_is_acknowledged_and_dropped(
    client: TestClient, context: TaskContext
) -> None:
    from tests.support.intake import all_event_count

    before = all_event_count(context)
    event = stripe_event("customer.subscription.deleted", "cus_nobody", int(time.time()))
    assert send(client, event).status_code == 200
    assert all_event_count(context) == before


def test_verified_but_malformed_body_is_400(client: TestClient) -> None:
    body = b'{"id": "evt_1", "type": '
    response = client.post(PATH, content=body, headers=stripe_headers(body))
    assert response.status_code == 400
    assert response.json() == {"error": "malformed body"}
