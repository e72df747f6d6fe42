"""Consent evidence: where and how a lead agreed to texts is kept encrypted, shown back to the
tenant and exported, and a campaign reaches only leads whose consent is newer than any STOP
from their number."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import dramatiq
import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from leadline.sandbox import SandboxState
from models.leads import LeadFields, upsert_lead
from models.messaging import Suppression
from models.tables import Lead
from tests.helpers import wait_for
from tests.support.intake import events_settled
from tests.support.messaging import (
    add_business_number,
    clock_at,
    distinct_phones,
    inbound_sms,
    make_leads,
    messages_settled,
    tuned_settings,
)
from tests.support.services import MakeOrg, Org

if TYPE_CHECKING:
    from tasks.context import TaskContext


pytestmark = pytest.mark.integration

FAR_FUTURE = datetime(2099, 1, 1, tzinfo=UTC)

CONSENT_TEXT = "I agree to receive texts from Acme Roofing. Msg&data rates may apply. STOP to end."
EVIDENCE = {
    "sms": True,
    "text": CONSENT_TEXT,
    "ip": "2001:DB8:0:0::7",
    "user_agent": "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
    "page_url": "https://acme-roofing.example/quote?utm_source=spring",
    "form_id": "quote-form-v2",
}


def post_lead(client: TestClient, org: Org, **body: object) -> str:
    response = client.post("/v1/leads", json=body, headers=org.auth)
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def lead_of_event(client: TestClient, org: Org, event_id: str) -> str:
    def processed() -> str | None:
        event = client.get(f"/v1/events/{event_id}", headers=org.auth).json()
        return event["lead_id"] if event["status"] == "processed" else None

    wait_for(lambda: processed() is not None)
    return str(processed())


def test_consent_evidence_is_stored_encrypted_shown_and_exported(
    client: TestClient, worker: dramatiq.Worker, make_org: MakeOrg, context: TaskContext
) -> None:
    org = make_org()
    event = post_lead(client, org, name="Ada", phone="+14155550123", consent=EVIDENCE)
    lead_id = lead_of_event(client, org, event)

    shown = client.get(f"/v1/leads/{lead_id}", headers=org.auth).json()

    [evidence] = shown["consent_evidence"]
    assert evidence == {
        "text": CONSENT_TEXT,
        "text_sha256": hashlib.sha256(CONSENT_TEXT.encode()).hexdigest(),
        "at": evidence["at"],
        "source": "api",
        "ip": "2001:db8::7",  # normalised
        "user_agent": EVIDENCE["user_agent"],
        "page_url": EVIDENCE["page_url"],
        "form_id": "quote-form-v2",
    }
    assert evidence["at"] is not None and shown["sms_consent"] is True
    with context.db.tenant(org.id) as session:
        row = session.get(Lead, uuid.UUID(lead_id))
        assert row is not None and row.consent_text_ct is not None
        stored = bytes(row.consent_text_ct)
    for plain in ("2001:db8", "Firefox", "acme-roofing", "quote-form", "Acme Roofing"):
        assert plain.encode() not in stored
    listed = client.get("/v1/leads", headers=org.auth).json()["data"]
    assert [lead["consent_evidence"] for lead in listed] == [None]  # one lead at a time

    exported = client.get("/v1/export", headers=org.auth).json()["leads"][0]["consent_text"]
    for value in ("2001:db8::7", "quote-form-v2", EVIDENCE["page_url"], evidence["text_sha256"]):
        assert value in exported


def test_each_new_consent_is_added_and_a_resubmission_is_kept_once(
    client: TestClient, worker: dramatiq.Worker, make_org: MakeOrg
) -> None:
    org = make_org()
    phone = "+14155550124"
    first = post_lead(client, org, phone=phone, consent=EVIDENCE)
    lead_of_event(client, org, first)
    again = post_lead(client, org, phone=phone, consent=EVIDENCE)
    lead_of_event(client, org, again)
    other_page = {**EVIDENCE, "page_url": "https://acme-roofing.example/contact"}
    lead_id = lead_of_event(client, org, post_lead(client, org, phone=phone, consent=other_page))
    plain = {"sms": True, "text": "Yes, text me"}  # the original shape keeps working
    lead_of_event(client, org, post_lead(client, org, phone=phone, consent=plain))

    evidence = client.get(f"/v1/leads/{lead_id}", headers=org.auth).json()["consent_evidence"]

    assert [(e["page_url"], e["text"]) for e in evidence] == [
        (EVIDENCE["page_url"], CONSENT_TEXT),
        ("https://acme-roofing.example/contact", CONSENT_TEXT),
        (None, "Yes, text me"),
    ]
    assert evidence[2]["text_sha256"] == hashlib.sha256(b"Yes, text me").hexdigest()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("ip", "999.1.1.1"),
        ("ip", "localhost"),
        ("ip", "10.0.0.1/8"),
        ("page_url", "javascript:alert(1)"),
        ("page_url", "ftp://files.example/form"),
        ("page_url", "https://user:hunter2@acme.example/"),
        ("page_url", "https:///no-host"),
        ("page_url", "https://acme.example/a b"),
        ("page_url", "//acme.example/form"),
        ("page_url", "https://acme.example:99999/"),
        ("page_url", "https://acme.example/" + "a" * 2048),
        ("user_agent", "U" * 513),
        ("form_id", "f" * 129),
        ("text", "t" * 1001),
        ("form_id", "quote\x00form"),
    ],
)
def test_bad_evidence_is_422_without_echoing_it_and_stores_nothing(
    client: TestClient, make_org: MakeOrg, context: TaskContext, field: str, value: str
) -> None:
    org = make_org()
    consent = {**EVIDENCE, field: value}

    response = client.post(
        "/v1/leads", json={"phone": "+14155550125", "consent": consent}, headers=org.auth
    )

    assert response.status_code == 422
    assert ["consent", field] in [error["loc"] for error in response.json()["fields"]]
    assert value[:12] not in response.text
    assert events_settled(context, org.id, 0)


def suppressed_count(context: TaskContext, org_id: uuid.UUID) -> int:
    with context.db.tenant(org_id) as session:
        return len(session.scalars(select(Suppression)).all())


def launch(client: TestClient, org: Org, key: str) -> str:
    body = {"name": "Spring", "template": "Hi {name}, roof check?", "filter": {"consent": "sms"}}
    headers = {**org.auth, "Idempotency-Key": key}
    response = client.post("/v1/campaigns", json=body, headers=headers)
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def test_a_campaign_targets_only_consent_newer_than_any_stop(
    client: TestClient,
    worker: dramatiq.Worker,
    make_org: MakeOrg,
    context: TaskContext,
    sandbox_state: SandboxState,
) -> None:
    org = make_org()
    add_business_number(context, org.id)  # its own pacing slots, on the clock below
    never, lifted, renewed, stopped, stopped_renewed, claimed = distinct_phones(6)
    make_leads(context, org.id, [never, lifted, renewed, stopped, stopped_renewed])
    with context.db.tenant(org.id) as session:  # a consent time claimed in the future
        fields = LeadFields(phone=claimed, sms_consent=True, consent_at=FAR_FUTURE)
        upsert_lead(session, context.keys.cipher(session, org.id), fields)
    for phone in (lifted, renewed, stopped, stopped_renewed, claimed):
        inbound_sms(context, org.id, phone, "STOP")  # recorded at the door
    for phone in (lifted, renewed, claimed):
        inbound_sms(context, org.id, phone, "START")
    wait_for(lambda: events_settled(context, org.id, 8) and suppressed_count(context, org.id) == 2)
    # Consent given again after the STOP: through the API like any form.
    for phone in (renewed, stopped_renewed):
        lead_of_event(client, org, post_lead(client, org, phone=phone, consent=EVIDENCE))

    with (
        clock_at(context) as clocked,  # inside every US recipient's quiet-hours window
        tuned_settings(clocked, leadline_campaign_rate_per_sender=50.0),
    ):
        campaign_id = launch(client, org, "spring")
        wait_for(lambda: messages_settled(context, org.id, 3))

    assert {record["to"] for record in sandbox_state.sent()} == {never, renewed}
    counts = client.get(f"/v1/campaigns/{campaign_id}", headers=org.auth).json()["counts"]
    # stopped_renewed consented after its STOP but never texted START: targeted, and blocked.
    assert (counts["targeted"], counts["sent"], counts["blocked"]) == (3, 2, 1)
