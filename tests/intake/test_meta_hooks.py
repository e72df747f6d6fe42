"""Meta webhooks: handshake, X-Hub-Signature-256 over raw bytes, messages become leads."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import dramatiq
import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from models.leads import decrypt_lead
from models.tables import InboundEvent, Lead
from tasks.after_commit import AfterCommit
from tasks.context import TaskContext
from tasks.inbound_events import process_stored_event
from tests.helpers import wait_for
from tests.support.intake import all_event_count, events_of, events_settled
from tests.support.services import MakeOrg
from tests.support.signing import (
    META_SECRET,
    META_VERIFY,
    messenger_body,
    meta_headers,
    whatsapp_body,
)

pytestmark = pytest.mark.integration

PATH = "/hooks/meta"
GREETING = "Привет! Нужна новая крыша ✨ — сколько стоит?"


def leads_of(context: TaskContext, org_id: uuid.UUID) -> list[Any]:
    with context.db.tenant(org_id) as session:
        cipher = context.keys.cipher(session, org_id)
        return [decrypt_lead(cipher, lead) for lead in session.scalars(select(Lead))]


def test_handshake_answers_the_challenge_only_with_the_token(client: TestClient) -> None:
    params = {
        "hub.mode": "subscribe",
        "hub.verify_token": META_VERIFY,
        "hub.challenge": "1158201444",
    }
    response = client.get(PATH, params=params)
    assert (response.status_code, response.text) == (200, "1158201444")
    assert response.headers["content-type"].startswith("text/plain")
    for bad in (
        {"hub.verify_token": "wrong"},
        {"hub.mode": "unsubscribe"},
        {"hub.challenge": "<script>"},
    ):
        response = client.get(PATH, params={**params, **bad})
        assert response.status_code == 403
        assert "script" not in response.text


def test_messenger_message_with_non_ascii_text_becomes_a_lead(
    client: TestClient,
    worker: dramatiq.Worker,
    make_org: MakeOrg,
    link_meta: Callable[[uuid.UUID], str],
    context: TaskContext,
) -> None:
    org = make_org()
    page = link_meta(org.id)
    body = messenger_body(page, "6543210987", [("m_first", GREETING), ("m_second", "ещё вопрос")])
    assert b"\xd0" in body  # raw UTF-8 bytes, signed as sent

    assert client.post(PATH, content=body, headers=meta_headers(body)).status_code == 200
    wait_for(lambda: events_settled(context, org.id, 2))

    [lead] = leads_of(context, org.id)
    assert (lead.source, lead.first_message) == ("messenger", GREETING)
    assert sorted(e.external_id for e in events_of(context, org.id)) == ["m_first", "m_second"]
    with context.db.tenant(org.id) as session:
        row = session.scalars(select(Lead)).one()
        assert row.platform_bidx is not None
        assert GREETING.encode() not in (row.first_message_ct or b"")


def process_in_order(context: TaskContext, org_id: uuid.UUID, external_ids: list[str]) -> None:
    """What the worker does with each event, one after the other in the order given."""
    for external_id in external_ids:
        with context.db.tenant(org_id) as session:
            query = select(InboundEvent.id).where(InboundEvent.external_id == external_id)
            event_id = session.scalars(query).one()
        assert process_stored_event(context, org_id, event_id, AfterCommit())


def test_first_message_is_the_earliest_whatever_order_the_worker_takes(
    client: TestClient,
    make_org: MakeOrg,
    link_meta: Callable[[uuid.UUID], str],
    context: TaskContext,
) -> None:
    """One delivery, two messages with the same send time (Meta gives milliseconds): the worker
    takes the second first, and the first still becomes the lead's first message."""
    org = make_org()
    page = link_meta(org.id)
    body = messenger_body(page, "6543210987", [("m_first", GREETING), ("m_second", "ещё вопрос")])
    assert client.post(PATH, content=body, headers=meta_headers(body)).status_code == 200

    process_in_order(context, org.id, ["m_second", "m_first"])

    [lead] = leads_of(context, org.id)
    assert lead.first_message == GREETING
    with context.db.tenant(org.id) as session:
        row = session.scalars(select(Lead)).one()
        assert GREETING.encode() not in (row.first_message_ct or b"")


def test_first_message_follows_send_time_across_deliveries(
    client: TestClient,
    make_org: MakeOrg,
    link_meta: Callable[[uuid.UUID], str],
    context: TaskContext,
) -> None:
    """Deliveries arrive out of order: the message sent earlier replaces the recorded one, a
    message sent later does not, whichever order they are processed in."""
    org = make_org()
    waba = link_meta(org.id)
    sent = [
        ("wamid.LATER", "second thought", "1700000060"),
        ("wamid.EARLIER", "Do you do gutters?", "1700000000"),
        ("wamid.LAST", "third thought", "1700000120"),
    ]
    for mid, text, at in sent:
        body = whatsapp_body(waba, "15551234567", mid, text, "Zoë", sent=at)
        assert client.post(PATH, content=body, headers=meta_headers(body)).status_code == 200

    process_in_order(context, org.id, ["wamid.LATER", "wamid.EARLIER", "wamid.LAST"])

    [lead] = leads_of(context, org.id)
    assert lead.first_message == "Do you do gutters?"


def test_whatsapp_message_becomes_a_lead_and_replay_is_one_event(
    client: TestClient,
    worker: dramatiq.Worker,
    make_org: MakeOrg,
    link_meta: Callable[[uuid.UUID], str],
    context: TaskContext,
) -> None:
    org = make_org()
    waba = link_meta(org.id)
    body = whatsapp_body(waba, "15551234567", "wamid.ABC123", "Do you do gutters?", "Zoë")
    for _ in range(2):
        assert client.post(PATH, content=body, headers=meta_headers(body)).status_code == 200
    wait_for(lambda: events_settled(context, org.id, 1))
    [lead] = leads_of(context, org.id)
    assert (lead.source, lead.name, lead.first_message) == ("whatsapp", "Zoë", "Do you do gutters?")


def test_bad_or_missing_signature_is_403_and_stores_nothing(
    client: TestClient,
    make_org: MakeOrg,
    link_meta: Callable[[uuid.UUID], str],
    context: TaskContext,
) -> None:
    org = make_org()
    body = messenger_body(link_meta(org.id), "111", [("m_x", GREETING)])
    cases = [
        (body.replace("крыша".encode(), "дверь".encode()), meta_headers(body)),  # tampered
        (body, meta_headers(body, secret=META_SECRET + "x")),  # wrong secret
        (body, {"Content-Type": "application/json"}),  # missing
        (body, {"X-Hub-Signature-256": "sha1=abc", "Content-Type": "application/json"}),
    ]
    for content, headers in cases:
        assert client.post(PATH, content=content, headers=headers).status_code == 403
    assert events_of(context, org.id) == []


def test_unknown_account_is_acknowledged_and_dropped(
    client: TestClient, context: TaskContext
) -> None:
    before = all_event_count(context)
    body = messenger_body("999000999000", "111", [("m_unknown", "hello")])
    assert client.post(PATH, content=body, headers=meta_headers(body)).status_code == 200
    assert all_event_count(context) == before
