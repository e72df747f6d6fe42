"""A STOP said on WhatsApp or Messenger reaches the business, not one app: SMS to that
person's number is suppressed too, from the webhook's 200 on."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING

import dramatiq
import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from leadline.sandbox import SandboxState
from models.leads import LeadFields, phone_index, platform_index, upsert_lead
from models.messaging import Suppression
from models.tables import AuditEntry, Lead
from tasks.sending import deliver_outbound
from tests.helpers import wait_for
from tests.support.intake import events_settled
from tests.support.messaging import captured_events, queue_alerts
from tests.support.services import MakeOrg
from tests.support.signing import messenger_body, meta_headers, whatsapp_body

if TYPE_CHECKING:
    from tasks.context import TaskContext


pytestmark = pytest.mark.integration

PATH = "/hooks/meta"


def suppressed(context: TaskContext, org_id: uuid.UUID) -> dict[bytes, str]:
    with context.db.tenant(org_id) as session:
        rows = session.scalars(select(Suppression)).all()
        return {row.recipient_bidx: row.reason for row in rows}


def indexes(
    context: TaskContext, org_id: uuid.UUID, phone: str, platform_user: str
) -> tuple[bytes, ...]:
    with context.db.tenant(org_id) as session:
        cipher = context.keys.cipher(session, org_id)
        return phone_index(cipher, phone), platform_index(cipher, platform_user)


def lead_count(context: TaskContext, org_id: uuid.UUID) -> int:
    with context.db.tenant(org_id) as session:
        return len(session.scalars(select(Lead)).all())


def test_a_whatsapp_stop_suppresses_sms_to_that_number(
    client: TestClient,
    worker: dramatiq.Worker,
    make_org: MakeOrg,
    link_meta: Callable[[uuid.UUID], str],
    context: TaskContext,
    sandbox_state: SandboxState,
) -> None:
    org = make_org()
    account = link_meta(org.id)
    phone, wa_id = "+14155550142", "14155550142"
    lead = {"phone": phone, "name": "Ana", "consent": {"sms": True, "text": "I agree"}}
    assert client.post("/v1/leads", json=lead, headers=org.auth).status_code == 202
    wait_for(lambda: events_settled(context, org.id, 1))
    [waiting] = queue_alerts(context, org.id, phone, 1, enqueue=False)

    body = whatsapp_body(account, wa_id, "wamid.stop1", "STOP 🛑", "Ana")
    with captured_events() as events:
        response = client.post(PATH, content=body, headers=meta_headers(body))
        assert response.status_code == 200
        # At the door: suppressed with the 200, before any worker has seen the event.
        sms_bidx, whatsapp_bidx = indexes(context, org.id, phone, f"whatsapp:{wa_id}")
        assert suppressed(context, org.id) == {
            sms_bidx: "whatsapp_keyword",
            whatsapp_bidx: "whatsapp_keyword",
        }
        wait_for(lambda: events_settled(context, org.id, 2))

    assert deliver_outbound(context, org.id, waiting) == "blocked"
    assert all(record["to"] != phone for record in sandbox_state.sent())
    assert lead_count(context, org.id) == 1  # the STOP is not a new lead to alert about
    assert sorted(data["channel"] for kind, data in events if kind == "optout.changed") == [
        "sms",
        "whatsapp",
    ]
    with context.db.tenant(org.id) as session:
        entries = session.scalars(select(AuditEntry).where(AuditEntry.action == "optout.added"))
        audited = sorted((e.actor, e.details["channel"]) for e in entries)
    assert audited == [("whatsapp:inbound", "sms"), ("whatsapp:inbound", "whatsapp")]


def test_a_messenger_revocation_suppresses_sms_to_the_leads_phone(
    client: TestClient,
    worker: dramatiq.Worker,
    make_org: MakeOrg,
    link_meta: Callable[[uuid.UUID], str],
    context: TaskContext,
) -> None:
    org = make_org()
    page = link_meta(org.id)
    psid, phone = "7654321098", "+14155550177"
    with context.db.tenant(org.id) as session:
        cipher = context.keys.cipher(session, org.id)
        fields = LeadFields(phone=phone, platform_user=f"messenger:{psid}", source="messenger")
        upsert_lead(session, cipher, fields)
    [waiting] = queue_alerts(context, org.id, phone, 1, enqueue=False)

    body = messenger_body(page, psid, [("m_stop", "please stop messaging me")])
    assert client.post(PATH, content=body, headers=meta_headers(body)).status_code == 200

    sms_bidx, messenger_bidx = indexes(context, org.id, phone, f"messenger:{psid}")
    assert suppressed(context, org.id) == {
        sms_bidx: "messenger_free_text",
        messenger_bidx: "messenger_free_text",
    }
    assert deliver_outbound(context, org.id, waiting) == "blocked"


def test_a_lookalike_on_whatsapp_is_a_message_not_an_opt_out(
    client: TestClient,
    worker: dramatiq.Worker,
    make_org: MakeOrg,
    link_meta: Callable[[uuid.UUID], str],
    context: TaskContext,
) -> None:
    org = make_org()
    account = link_meta(org.id)
    body = whatsapp_body(account, "14155550188", "wamid.by1", "I'll stop by tomorrow", "Bo")

    assert client.post(PATH, content=body, headers=meta_headers(body)).status_code == 200
    wait_for(lambda: events_settled(context, org.id, 1))

    assert suppressed(context, org.id) == {}
    assert lead_count(context, org.id) == 1


def test_an_unsigned_stop_suppresses_nothing(
    client: TestClient,
    make_org: MakeOrg,
    link_meta: Callable[[uuid.UUID], str],
    context: TaskContext,
) -> None:
    org = make_org()
    account = link_meta(org.id)
    body = whatsapp_body(account, "14155550199", "wamid.forged", "STOP", "Eve")
    headers = meta_headers(body, secret="not-the-app-secret")

    assert client.post(PATH, content=body, headers=headers).status_code == 403
    assert suppressed(context, org.id) == {}
