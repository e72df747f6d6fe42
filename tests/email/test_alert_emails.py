"""Lead alerts by email to the business's alert emails, through the outbox like SMS alerts."""

from __future__ import annotations

import uuid

import dramatiq
import pytest
from starlette.testclient import TestClient

from leadline.sandbox import SandboxServer, SandboxState
from tasks.context import TaskContext
from tests.helpers import wait_for
from tests.support.email import distinct_emails, sandbox_emails, set_email_from
from tests.support.messaging import messages_settled, outbound_rows
from tests.support.services import MakeOrg

pytestmark = pytest.mark.integration


def add_alert_email(context: TaskContext, org_id: uuid.UUID, address: str) -> uuid.UUID:
    from models.alert_settings import add_alert_email as add

    with context.db.tenant(org_id) as session:
        return add(session, context.keys.cipher(session, org_id), address, actor="test")


def test_a_new_lead_is_emailed_to_the_alert_emails(
    client: TestClient,
    worker: dramatiq.Worker,
    make_org: MakeOrg,
    context: TaskContext,
    provider_sandbox: SandboxServer,
    sandbox_state: SandboxState,
) -> None:
    org = make_org("Acme Roofing")
    sender = set_email_from(context, org.id, "alerts@acme.example")
    owner, lead_address = distinct_emails(2)
    add_alert_email(context, org.id, owner)
    add_alert_email(context, org.id, owner.upper())  # the same address: one recipient

    body = {"name": "Ada", "email": lead_address, "message": "Leaking roof"}
    assert client.post("/v1/leads", json=body, headers=org.auth).status_code == 202
    wait_for(lambda: messages_settled(context, org.id, 1, channel="email"))

    (record,) = sandbox_emails(provider_sandbox)
    assert record["to"] == owner and record["from"] == sender
    assert record["subject"] == "New lead for Acme Roofing: Ada"
    assert "Leaking roof" in record["body"] and lead_address in record["body"]
    assert record["message_stream"] == "outbound"
    assert "List-Unsubscribe" not in record["headers"]  # an alert to the business itself
    assert record["metadata"]["leadline_org"] == str(org.id)
    (row,) = outbound_rows(context, org.id, channel="email")
    assert row.state == "sent" and row.provider_sid == record["message_id"]
    assert owner.encode() not in row.recipient_ct and owner.encode() not in row.body_ct


def test_an_org_without_a_sender_address_sends_no_alert_email(
    client: TestClient,
    worker: dramatiq.Worker,
    make_org: MakeOrg,
    context: TaskContext,
    sandbox_state: SandboxState,
) -> None:
    org = make_org()
    add_alert_email(context, org.id, distinct_emails(1)[0])

    body = {"name": "Ada", "phone": "+14155550177"}
    assert client.post("/v1/leads", json=body, headers=org.auth).status_code == 202
    wait_for(lambda: processed(context, org.id))

    assert outbound_rows(context, org.id, channel="email") == []
    assert sandbox_state.sent() == []


def processed(context: TaskContext, org_id: uuid.UUID) -> bool:
    from sqlalchemy import select

    from models.tables import InboundEvent

    with context.db.tenant(org_id) as session:
        return session.scalars(select(InboundEvent.status)).all() == ["processed"]


def test_alert_emails_through_the_tenant_api(client: TestClient, make_org: MakeOrg) -> None:
    org = make_org()
    (address,) = distinct_emails(1)
    url = "/v1/alert-recipients"
    added = client.post(url, json={"email": address}, headers=org.auth)
    twice = client.post(url, json={"email": address.upper()}, headers=org.auth)
    number = client.post(url, json={"phone": "+14155550123"}, headers=org.auth)
    assert added.status_code == twice.status_code == number.status_code == 201
    assert added.json() == twice.json()

    listed = client.get(url, headers=org.auth).json()["data"]
    assert [(r["phone"], r["email"]) for r in listed] == [("+14155550123", None), (None, address)]
    for both_or_neither in ({"email": address, "phone": "+14155550123"}, {}):
        assert client.post(url, json=both_or_neither, headers=org.auth).status_code == 422
    removed = client.request("DELETE", url, json={"email": address}, headers=org.auth)
    assert removed.json() == {"id": added.json()["id"], "deleted": True}
    gone = client.request("DELETE", url, json={"email": address}, headers=org.auth)
    assert gone.status_code == 404
