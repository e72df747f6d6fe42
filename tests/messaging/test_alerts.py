"""A lead arrives → the business hears about it by Telegram and SMS within seconds."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import dramatiq
import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from leadline.sandbox import SandboxState
from models.alert_settings import set_template, update_program
from models.messaging import ConversationMessage
from tests.helpers import wait_for
from tests.support.messaging import (
    add_alert_number,
    add_business_number,
    assert_no_duplicates,
    inbound_sms,
    link_chat,
    messages_settled,
    outbound_rows,
    random_phone,
    sent_to,
)
from tests.support.services import MakeOrg, Org

if TYPE_CHECKING:
    from tasks.context import TaskContext

pytestmark = pytest.mark.integration

pytestmark = [pytest.mark.integration, pytest.mark.both_brokers]


def post_lead(client: TestClient, org: Org, body: dict[str, Any]) -> None:
    response = client.post("/v1/leads", json=body, headers=org.auth)
    assert response.status_code == 202


def enable_autoreply(context: TaskContext, org: Org) -> None:
    with context.db.tenant(org.id) as session:
        update_program(session, org.id, autoreply=True, actor="test")


def test_posted_lead_reaches_telegram_and_sms_and_consenting_lead(
    client: TestClient,
    worker: dramatiq.Worker,
    make_org: MakeOrg,
    context: TaskContext,
    sandbox_state: SandboxState,
    log_lines: Callable[[], list[dict[str, Any]]],
) -> None:
    org = make_org("Acme Roofing")
    business = add_business_number(context, org.id)
    owner, lead_phone = random_phone(), "+14155550123"
    add_alert_number(context, org.id, owner)
    link_chat(context, org.id, 777001)
    enable_autoreply(context, org)

    post_lead(
        client,
        org,
        {
            "name": "Ada Lovelace",
            "phone": lead_phone,
            "message": "Roof leaks",
            "consent": {"sms": True, "text": "I agree"},
        },
    )

    wait_for(lambda: messages_settled(context, org.id, 3), timeout=10)
    (owner_sms,) = sent_to(sandbox_state, owner)
    assert "Ada Lovelace" in owner_sms["body"] and lead_phone in owner_sms["body"]
    assert "Roof leaks" in owner_sms["body"] and owner_sms["from"] == business
    (telegram,) = sent_to(sandbox_state, "777001")
    assert telegram["channel"] == "telegram" and "Ada Lovelace" in telegram["body"]
    (autoreply,) = sent_to(sandbox_state, lead_phone)
    assert "Acme Roofing" in autoreply["body"] and "STOP" in autoreply["body"]
    rows = outbound_rows(context, org.id)
    assert {row.state for row in rows} == {"sent"}
    assert all(row.provider_sid for row in rows)
    assert_no_duplicates(sandbox_state)
    logged = str(log_lines())
    for plaintext in ("Ada Lovelace", "Roof leaks", lead_phone, owner, "test-bot-token"):
        assert plaintext not in logged


def test_no_autoreply_without_sms_consent(
    client: TestClient,
    worker: dramatiq.Worker,
    make_org: MakeOrg,
    context: TaskContext,
    sandbox_state: SandboxState,
) -> None:
    org = make_org()
    owner, lead_phone = random_phone(), "+14155550124"
    add_alert_number(context, org.id, owner)
    enable_autoreply(context, org)

    post_lead(client, org, {"name": "No Consent", "phone": lead_phone})

    wait_for(lambda: messages_settled(context, org.id, 1))
    assert len(sent_to(sandbox_state, owner)) == 1
    assert sent_to(sandbox_state, lead_phone) == []


def test_org_template_is_used_and_rows_are_encrypted(
    client: TestClient,
    worker: dramatiq.Worker,
    make_org: MakeOrg,
    context: TaskContext,
    sandbox_state: SandboxState,
) -> None:
    org = make_org()
    owner = random_phone()
    add_alert_number(context, org.id, owner)
    with context.db.tenant(org.id) as session:
        set_template(session, org.id, "owner_alert_sms", "LEAD {name} / {email}", actor="test")

    post_lead(client, org, {"name": "Grace Hopper", "email": "grace@example.com"})

    wait_for(lambda: messages_settled(context, org.id, 1))
    assert sent_to(sandbox_state, owner)[0]["body"] == "LEAD Grace Hopper / grace@example.com"
    (row,) = outbound_rows(context, org.id)
    assert b"Grace" not in row.body_ct and owner.encode() not in row.recipient_ct


def test_lead_reply_is_stored_encrypted_and_alerted(
    client: TestClient,
    worker: dramatiq.Worker,
    make_org: MakeOrg,
    context: TaskContext,
    sandbox_state: SandboxState,
) -> None:
    org = make_org()
    owner, lead_phone = random_phone(), "+14155550125"
    add_alert_number(context, org.id, owner)
    link_chat(context, org.id, 777002)
    post_lead(client, org, {"name": "Replying Rita", "phone": lead_phone})
    wait_for(lambda: messages_settled(context, org.id, 2))

    inbound_sms(context, org.id, lead_phone, "Is Tuesday OK for the visit?")

    wait_for(lambda: messages_settled(context, org.id, 4))
    assert "Is Tuesday OK" in sent_to(sandbox_state, owner)[-1]["body"]
    assert "Replying Rita" in sent_to(sandbox_state, "777002")[-1]["body"]
    with context.db.tenant(org.id) as session:
        (message,) = session.scalars(select(ConversationMessage)).all()
    assert b"Tuesday" not in message.body_ct
    assert_no_duplicates(sandbox_state)


def test_text_from_unknown_number_becomes_a_lead_with_one_alert(
    worker: dramatiq.Worker, make_org: MakeOrg, context: TaskContext, sandbox_state: SandboxState
) -> None:
    org = make_org()
    owner, stranger = random_phone(), "+14155550126"
    add_alert_number(context, org.id, owner)

    inbound_sms(context, org.id, stranger, "Do you do gutters?")

    wait_for(lambda: messages_settled(context, org.id, 1))
    (alert,) = sent_to(sandbox_state, owner)
    assert "Do you do gutters?" in alert["body"] and stranger in alert["body"]
