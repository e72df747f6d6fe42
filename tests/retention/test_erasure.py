"""Erasure of one person: gone in one run, and still gone after an older backup is restored."""

from __future__ import annotations

import json
import uuid

import pytest
from sqlalchemy import Table, select
from starlette.testclient import TestClient

from intake.inbox import store_inbound_event
from models.leads import LeadFields, blind_indexes
from models.retention import ErasureRequest, ErasureTombstone
from models.tables import AuditEntry, InboundEvent, Lead
from tasks.backups import create_backup
from tasks.context import TaskContext
from tasks.erasure import process_erasures
from tasks.restore import restore_backup
from tests.support.retention import add_lead, add_note
from tests.support.services import MakeOrg

pytestmark = pytest.mark.integration


ADA = {"name": "Ada Erasable", "phone": "+14155550111", "email": "ada.erase@example.org"}
BOB = {"name": "Bob Keeps", "phone": "+14155550122", "email": "bob.keep@example.org"}


def lead_ids(context: TaskContext, org_id: uuid.UUID) -> set[uuid.UUID]:
    with context.db.tenant(org_id) as session:
        return set(session.scalars(select(Lead.id)))


def note_leads(context: TaskContext, table: Table, org_id: uuid.UUID) -> list[uuid.UUID]:
    with context.db.tenant(org_id) as session:
        return sorted(session.scalars(select(table.c.lead_id)))


def find_by_phone(context: TaskContext, org_id: uuid.UUID, phone: str) -> Lead | None:
    with context.db.tenant(org_id) as session:
        cipher = context.keys.cipher(session, org_id)
        bidx = blind_indexes(cipher, LeadFields(phone=phone))["phone_bidx"]
        return session.scalars(select(Lead).where(Lead.phone_bidx == bidx)).first()


def test_erasure_removes_lead_and_linked_rows_in_one_run_and_survives_restore(
    context: TaskContext, client: TestClient, make_org: MakeOrg, notes_table: Table
) -> None:
    org = make_org()
    ada, bob = add_lead(context, org.id, **ADA), add_lead(context, org.id, **BOB)
    for lead in (ada, ada, bob):
        add_note(context, notes_table, org.id, lead, "called back about the roof")
    payload = {**ADA, "message": "quote please", "received_at": context.clock().isoformat()}
    event = store_inbound_event(context, org.id, "api", "ada-1", payload)
    older_backup = create_backup(context, org.id, context.clock())

    response = client.delete(f"/v1/leads/{ada}", headers=org.auth)
    assert response.status_code == 202
    again = client.delete(f"/v1/leads/{ada}", headers=org.auth)
    assert again.json()["erasure_request"] == response.json()["erasure_request"]

    summary = process_erasures(context, context.clock())
    assert summary["erased"] >= 1
    assert lead_ids(context, org.id) == {bob}
    assert note_leads(context, notes_table, org.id) == [bob]
    with context.db.tenant(org.id) as session:
        stored = session.get(InboundEvent, event.id)
        assert stored is not None and stored.payload_ct is None and stored.status == "erased"
        request = session.get(ErasureRequest, uuid.UUID(response.json()["erasure_request"]))
        assert request is not None and request.status == "done"
        tombstone = session.scalars(select(ErasureTombstone)).one()
        assert tombstone.phone_bidx and tombstone.email_bidx
        audit = session.scalars(select(AuditEntry).where(AuditEntry.action == "lead.erased")).one()
    assert "Ada" not in json.dumps(audit.details) and ADA["phone"] not in json.dumps(audit.details)

    restored = restore_backup(context, older_backup.id, context.clock())
    assert restored["erased_again"] == 1
    assert find_by_phone(context, org.id, ADA["phone"]) is None
    assert lead_ids(context, org.id) == {bob}
    assert note_leads(context, notes_table, org.id) == [bob]
    with context.db.tenant(org.id) as session:
        assert session.get(InboundEvent, event.id).payload_ct is None  # type: ignore[union-attr]


def test_restore_puts_missing_rows_back_once(
    context: TaskContext, make_org: MakeOrg, notes_table: Table
) -> None:
    org = make_org()
    lead = add_lead(context, org.id, **BOB)
    add_note(context, notes_table, org.id, lead, "note")
    backup = create_backup(context, org.id, context.clock())
    with context.db.tenant(org.id) as session:
        session.execute(notes_table.delete())
    first = restore_backup(context, backup.id, context.clock())
    second = restore_backup(context, backup.id, context.clock())
    assert first["inserted"].get(notes_table.name) == 1
    assert sum(second["inserted"].values()) == 0
    assert note_leads(context, notes_table, org.id) == [lead]
    assert find_by_phone(context, org.id, BOB["phone"]) is not None


def test_erasure_api_refuses_other_orgs_leads_and_missing_keys(
    context: TaskContext, client: TestClient, make_org: MakeOrg
) -> None:
    owner, intruder = make_org(), make_org()
    lead = add_lead(context, owner.id, phone="+14155550133")
    assert client.delete(f"/v1/leads/{lead}", headers=intruder.auth).status_code == 404
    assert client.delete(f"/v1/leads/{lead}").status_code == 401
    assert client.delete("/v1/leads/not-a-uuid", headers=owner.auth).status_code == 404
    with context.db.tenant(owner.id) as session:
        assert session.scalars(select(ErasureRequest)).first() is None
    assert lead_ids(context, owner.id) == {lead}
