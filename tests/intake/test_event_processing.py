"""The worker's hot path on Core statements keeps its guarantees: an event is processed once,
names its lead, is skipped while another worker holds it, and the lead it returns is a loaded
row of the session whose later changes are written."""

from __future__ import annotations

import re
import threading
import uuid
from dataclasses import fields
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import func, insert, inspect, select

from leadline.jsondata import JsonObject
from models.leads import LeadFields, get_lead, phone_index, upsert_lead
from models.tables import InboundEvent, InboundEventStatus, Lead, LeadStatus
from tasks import inbound_events
from tasks.after_commit import AfterCommit
from tasks.inbound_events import (
    PendingEvent,
    encrypt_payload,
    process_event,
    process_stored_event,
)
from tests.support.messaging import random_phone
from tests.support.services import MakeOrg

if TYPE_CHECKING:
    from tasks.context import TaskContext

pytestmark = pytest.mark.integration


def api_payload(phone: str) -> JsonObject:
    """An API lead's payload as the intake stores it (phone already in E.164)."""
    return {
        "name": "Grace Example",
        "phone": phone,
        "email": f"grace.{uuid.uuid4().hex[:8]}@example.org",
        "message": "Call me back",
        "consent": {"sms": True, "text": "Texts are fine"},
        "received_at": datetime.now(UTC).isoformat(),
    }


def stored_event(context: TaskContext, org_id: uuid.UUID, payload: JsonObject) -> uuid.UUID:
    """A pending API event, not enqueued (the test calls the actor's function itself)."""
    event_id = uuid.uuid4()
    with context.db.tenant(org_id) as session:
        cipher = context.keys.cipher(session, org_id)
        row = {
            "id": event_id,
            "org_id": org_id,
            "source": "api",
            "payload_ct": encrypt_payload(cipher, event_id, payload),
            "status": InboundEventStatus.PENDING,
        }
        session.execute(insert(InboundEvent), [row])
    return event_id


def lead_count(context: TaskContext, org_id: uuid.UUID) -> int:
    with context.db.tenant(org_id) as session:
        return int(session.scalar(select(func.count()).select_from(Lead)) or 0)


def test_processed_event_names_its_lead_once(context: TaskContext, make_org: MakeOrg) -> None:
    org = make_org()
    phone = random_phone()
    event_id = stored_event(context, org.id, api_payload(phone))
    process_event.fn(str(org.id), str(event_id))
    process_event.fn(str(org.id), str(event_id))  # a redelivered message changes nothing
    with context.db.tenant(org.id) as session:
        event = session.get(InboundEvent, event_id)
        [lead] = session.scalars(select(Lead)).all()
        assert event is not None
        assert event.status == InboundEventStatus.PROCESSED
        assert event.processed_at is not None
        assert event.processed_lead_id == lead.id
        cipher = context.keys.cipher(session, org.id)
        assert lead.phone_bidx == phone_index(cipher, phone)
        assert get_lead(session, cipher, lead.id).phone == phone


def test_the_lock_query_reads_the_pending_event_fields_in_order() -> None:
    selected = re.fullmatch(r"SELECT (.*) FROM inbound_events .*", inbound_events._LOCK_PENDING)
    assert selected is not None
    columns = selected.group(1).split(", ")
    assert columns == ["status", *(field.name for field in fields(PendingEvent))]


def test_event_held_by_another_worker_is_skipped(context: TaskContext, make_org: MakeOrg) -> None:
    org = make_org()
    event_id = stored_event(context, org.id, api_payload(random_phone()))
    locked, release = threading.Event(), threading.Event()

    def hold() -> None:
        with context.db.tenant(org.id) as session:
            query = select(InboundEvent).where(InboundEvent.id == event_id).with_for_update()
            session.scalars(query).one()
            locked.set()
            release.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert locked.wait(30)
        assert not process_stored_event(context, org.id, event_id, AfterCommit())
    finally:
        release.set()
        holder.join()
    assert lead_count(context, org.id) == 0


def test_new_lead_is_a_loaded_row_whose_changes_are_written(
    context: TaskContext, make_org: MakeOrg
) -> None:
    org = make_org()
    with context.db.tenant(org.id) as session:
        cipher = context.keys.cipher(session, org.id)
        result = upsert_lead(session, cipher, LeadFields(phone=random_phone(), name="Lin"))
        lead = result.lead
        assert result.created
        assert inspect(lead).unloaded == set()  # nothing left to load with another SELECT
        assert (lead.status, lead.sms_consent, lead.email_consent) == (LeadStatus.NEW, False, False)
        assert lead.created_at is not None
        assert session.get(Lead, lead.id) is lead
        lead.status = LeadStatus.CONTACTED
    with context.db.tenant(org.id) as session:
        stored = session.get(Lead, lead.id)
        assert stored is not None
        assert stored.status == LeadStatus.CONTACTED


def test_existing_lead_is_completed_in_the_same_and_a_later_transaction(
    context: TaskContext, make_org: MakeOrg
) -> None:
    org = make_org()
    phone = random_phone()
    with context.db.tenant(org.id) as session:
        cipher = context.keys.cipher(session, org.id)
        first = upsert_lead(session, cipher, LeadFields(phone=phone)).lead
        again = upsert_lead(session, cipher, LeadFields(phone=phone, name="Mo"))
        assert (again.lead, again.created) == (first, False)
    with context.db.tenant(org.id) as session:
        cipher = context.keys.cipher(session, org.id)
        later = upsert_lead(session, cipher, LeadFields(phone=phone, email="mo@example.org"))
        assert (later.lead.id, later.created) == (first.id, False)
    with context.db.tenant(org.id) as session:
        view = get_lead(session, context.keys.cipher(session, org.id), first.id)
        assert (view.name, view.email, view.phone) == ("Mo", "mo@example.org", phone)
    assert lead_count(context, org.id) == 1


def test_a_normalised_phone_not_in_e164_form_is_parsed_anyway(
    context: TaskContext, make_org: MakeOrg
) -> None:
    org = make_org()
    with context.db.tenant(org.id) as session:
        cipher = context.keys.cipher(session, org.id)
        fields = LeadFields(phone="+1 (415) 555-0142", phone_normalized=True)
        lead = upsert_lead(session, cipher, fields).lead
        assert lead.phone_bidx == phone_index(cipher, "+14155550142")
        assert get_lead(session, cipher, lead.id).phone == "+14155550142"
