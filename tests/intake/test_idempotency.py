"""Idempotency-Key on POST /v1/leads (IETF httpapi idempotency-key draft) and replay-proof
signed leads: a retry is answered, a different body under a used key is refused, and a
captured signed request cannot be replayed under a fresh key."""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import TYPE_CHECKING, Any

import dramatiq
import pytest
from sqlalchemy import func, select
from starlette.testclient import TestClient

from intake.routes.leads import canonical_lead
from intake.schemas import LeadIn
from leadline.sandbox import SandboxState
from models.leads import decrypt_lead
from models.messaging import OutboundMessage
from models.routing import rotate_signing_secret
from models.tables import InboundEvent, Lead
from tests.helpers import wait_for
from tests.support.intake import events_of, events_settled
from tests.support.messaging import add_alert_number, random_phone, sent_to
from tests.support.services import MakeOrg, Org
from tests.support.signing import standard_headers

if TYPE_CHECKING:
    from tasks.context import TaskContext

pytestmark = pytest.mark.integration

FIRST = {"name": "Ada Quartermain", "email": "ada.idem@example.org", "message": "Quote my roof"}
SECOND = {"name": "Mallory Other", "email": "mallory.idem@example.org", "message": "Different"}
REUSED = {
    "error": "idempotency_key_reused",
    "message": "idempotency key reused with a different body",
    "fields": None,
}


def post(client: TestClient, org: Org, body: bytes, key: str) -> Any:
    headers = {**org.auth, "Idempotency-Key": key, "Content-Type": "application/json"}
    return client.post("/v1/leads", content=body, headers=headers)


def leads_of(context: TaskContext, org_id: uuid.UUID) -> list[Lead]:
    with context.db.tenant(org_id) as session:
        return list(session.scalars(select(Lead)))


def test_same_key_and_same_body_answer_the_same_id_once(
    client: TestClient, worker: dramatiq.Worker, make_org: MakeOrg, context: TaskContext
) -> None:
    org = make_org()
    compact = json.dumps(FIRST).encode()
    # the same lead, other key order and spacing: the fingerprint is of the validated lead
    spaced = json.dumps(dict(reversed(FIRST.items())), indent=2).encode()

    answers = [post(client, org, body, "k-same") for body in (compact, spaced, compact)]

    assert {a.status_code for a in answers} == {202}
    assert len({a.json()["id"] for a in answers}) == 1
    wait_for(lambda: events_settled(context, org.id, 1))
    assert len(leads_of(context, org.id)) == 1


def test_same_key_with_a_different_body_is_422_and_stores_nothing(
    client: TestClient, worker: dramatiq.Worker, make_org: MakeOrg, context: TaskContext
) -> None:
    org = make_org()
    first = post(client, org, json.dumps(FIRST).encode(), "k-reused")
    different = post(client, org, json.dumps(SECOND).encode(), "k-reused")
    retry = post(client, org, json.dumps(FIRST).encode(), "k-reused")

    assert first.status_code == retry.status_code == 202
    assert retry.json() == first.json()
    assert different.status_code == 422
    assert different.json() == REUSED
    for value in SECOND.values():
        assert value not in different.text
    wait_for(lambda: events_settled(context, org.id, 1))
    (lead,) = leads_of(context, org.id)
    with context.db.tenant(org.id) as session:
        view = decrypt_lead(context.keys.cipher(session, org.id), lead)
    assert (view.name, view.email) == (FIRST["name"], FIRST["email"])


def test_a_key_belongs_to_one_org(
    client: TestClient, make_org: MakeOrg, context: TaskContext
) -> None:
    org_a, org_b = make_org("A"), make_org("B")
    body = json.dumps(FIRST).encode()
    a = post(client, org_a, body, "k-shared")
    b = post(client, org_b, json.dumps(SECOND).encode(), "k-shared")
    assert a.status_code == b.status_code == 202
    assert a.json() != b.json()
    assert len(events_of(context, org_a.id)) == len(events_of(context, org_b.id)) == 1


def test_the_fingerprint_is_keyed_per_org_not_a_plain_hash(
    client: TestClient, make_org: MakeOrg, context: TaskContext
) -> None:
    org_a, org_b = make_org("A"), make_org("B")
    body = json.dumps(FIRST).encode()
    for org in (org_a, org_b):
        assert post(client, org, body, "k-print").status_code == 202
    (event_a,), (event_b,) = events_of(context, org_a.id), events_of(context, org_b.id)
    assert event_a.request_fingerprint and event_b.request_fingerprint
    assert event_a.request_fingerprint != event_b.request_fingerprint
    canonical = canonical_lead(LeadIn.model_validate(FIRST)).encode()
    for raw in (canonical, body):
        assert hashlib.sha256(raw).digest()[:16] != event_a.request_fingerprint[:16]


def rotate(context: TaskContext, org_id: uuid.UUID) -> str:
    with context.db.tenant(org_id) as session:
        return rotate_signing_secret(session, context.keys.cipher(session, org_id), context.clock())


def test_a_signed_lead_replayed_under_new_idempotency_keys_is_one_event_one_lead_one_alert(
    client: TestClient,
    worker: dramatiq.Worker,
    make_org: MakeOrg,
    context: TaskContext,
    sandbox_state: SandboxState,
) -> None:
    org = make_org()
    owner = random_phone()
    add_alert_number(context, org.id, owner)
    secret = rotate(context, org.id)
    body = json.dumps({**FIRST, "phone": "+14155550177"}).encode()
    signed = standard_headers(secret, body, org.id, "msg_replayed")

    answers = [client.post("/v1/leads", content=body, headers=signed)]
    answers += [
        client.post("/v1/leads", content=body, headers={**signed, "Idempotency-Key": key})
        for key in ("attacker-1", "attacker-2", "attacker-3")
    ]

    assert {a.status_code for a in answers} == {202}
    assert len({a.json()["id"] for a in answers}) == 1
    wait_for(lambda: events_settled(context, org.id, 1))
    wait_for(lambda: len(sent_to(sandbox_state, owner)) == 1)
    (event,) = events_of(context, org.id)
    assert event.external_id == "msg_replayed"
    assert len(leads_of(context, org.id)) == 1
    with context.db.tenant(org.id) as session:
        alerts = session.scalar(select(func.count()).select_from(OutboundMessage))
        assert session.scalar(select(func.count()).select_from(InboundEvent)) == 1
    assert alerts == 1
    assert len(sent_to(sandbox_state, owner)) == 1


def test_a_signed_lead_needs_a_usable_webhook_id(
    client: TestClient, make_org: MakeOrg, context: TaskContext
) -> None:
    """The signed id is the idempotency key; one that cannot be one is refused, never
    replaced by the unsigned header."""
    org = make_org()
    secret = rotate(context, org.id)
    body = json.dumps(FIRST).encode()
    signed = standard_headers(secret, body, org.id, "msg with spaces")
    response = client.post("/v1/leads", content=body, headers={**signed, "Idempotency-Key": "k"})
    assert response.status_code == 400
    assert events_of(context, org.id) == []


def test_the_fingerprint_goes_with_the_payload_when_it_is_purged(
    client: TestClient, worker: dramatiq.Worker, make_org: MakeOrg, context: TaskContext
) -> None:
    from datetime import timedelta

    from tasks.sweeps import purge_inbound

    org = make_org()
    first = post(client, org, json.dumps(FIRST).encode(), "k-purged")
    wait_for(lambda: events_settled(context, org.id, 1))
    purge_inbound(context, context.clock() + timedelta(days=8))
    (event,) = events_of(context, org.id)
    assert event.payload_ct is None and event.request_fingerprint is None
    # nothing left to compare with: the key answers its first id, as before fingerprints
    again = post(client, org, json.dumps(SECOND).encode(), "k-purged")
    assert again.status_code == 202 and again.json() == first.json()
    assert len(events_of(context, org.id)) == 1


def test_erasing_the_person_drops_the_fingerprint(
    client: TestClient, worker: dramatiq.Worker, make_org: MakeOrg, context: TaskContext
) -> None:
    from tasks.erasure import process_erasures

    org = make_org()
    assert post(client, org, json.dumps(FIRST).encode(), "k-erased").status_code == 202
    (lead,) = wait_for(lambda: leads_of(context, org.id))
    assert client.delete(f"/v1/leads/{lead.id}", headers=org.auth).status_code == 202
    process_erasures(context, context.clock())
    (event,) = events_of(context, org.id)
    assert event.request_fingerprint is None
