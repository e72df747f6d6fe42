"""Erasure of one person (GDPR/PIPEDA): the lead, every row tied to it, and inbound payloads
that mention them; a tombstone of blind indexes keeps them erased if a backup is restored.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from leadline.errors import CryptoError, NotFoundError
from leadline.logging import get_logger
from models.audit import record_audit
from models.bundles import Row, column_value
from models.crypto import OrgCipher
from models.normalize import InvalidPhoneNumber, normalize_email, normalize_phone
from models.retention import ErasureRequest, ErasureTombstone, delete_all, lead_linked_tables
from models.tables import InboundEvent, Lead
from tasks.backups import journal_erasure
from tasks.context import TaskContext

log = get_logger(__name__)
INDEX_COLUMNS = ("phone_bidx", "email_bidx", "platform_bidx")


@dataclass(frozen=True)
class Tombstone:
    indexes: frozenset[bytes]
    created_at: datetime

    def covers(self, lead: Row) -> bool:
        """A lead that existed when the person was erased and shares an identity with them."""
        found = {lead.get(column) for column in INDEX_COLUMNS} - {None}
        return bool(found & self.indexes) and (
            column_value(lead, "created_at", datetime) <= self.created_at
        )


def request_erasure(
    session: Session, lead_id: uuid.UUID, now: datetime, deadline: timedelta, actor: str
) -> ErasureRequest:
    """A pending erasure request for a lead of the session's org (one per lead)."""
    lead = session.get(Lead, lead_id)
    if lead is None:
        raise NotFoundError("lead not found (check ORG and LEAD_ID)")
    values = {
        "id": uuid.uuid4(),
        "org_id": lead.org_id,
        "lead_id": lead_id,
        "requested_by": actor,
        "status": "pending",
        "requested_at": now,
        "due_at": now + deadline,
        "details": {},
    }
    session.execute(
        insert(ErasureRequest)
        .values(**values)
        .on_conflict_do_nothing(
            index_elements=["org_id", "lead_id"], index_where=ErasureRequest.status == "pending"
        )
    )
    pending = select(ErasureRequest).where(
        ErasureRequest.lead_id == lead_id, ErasureRequest.status == "pending"
    )
    request = session.scalars(pending).one()
    if request.id == values["id"]:
        record_audit(
            session,
            actor,
            "lead.erasure_requested",
            org_id=lead.org_id,
            target=str(request.id),
            details={"lead_id": str(lead_id), "due_at": request.due_at.isoformat()},
        )
    return request


def process_erasures(context: TaskContext, now: datetime) -> dict[str, int]:
    """Carry out every pending request, oldest deadline first."""
    erased, overdue = 0, 0
    for org_id, request_id, due_at in pending_requests(context):
        if erase_request(context, org_id, request_id, now):
            erased += 1
            overdue += due_at < now
    return {"erased": erased, "overdue": overdue}


def pending_requests(context: TaskContext) -> Iterator[tuple[uuid.UUID, uuid.UUID, datetime]]:
    batch = context.settings.leadline_retention_batch_size
    seen: set[uuid.UUID] = set()
    while True:
        query = (
            select(ErasureRequest.org_id, ErasureRequest.id, ErasureRequest.due_at)
            .where(ErasureRequest.status == "pending", ErasureRequest.id.not_in(seen))
            .order_by(ErasureRequest.due_at)
            .limit(batch)
        )
        with context.db.maintenance() as session:
            rows = [(row.org_id, row.id, row.due_at) for row in session.execute(query)]
        if not rows:
            return
        for org_id, request_id, due_at in rows:
            seen.add(request_id)
            yield org_id, request_id, due_at


def erase_request(
    context: TaskContext, org_id: uuid.UUID, request_id: uuid.UUID, now: datetime
) -> bool:
    """Linked rows, then payloads, then (with the tombstone, atomically) the lead itself."""
    with context.db.tenant(org_id) as session:
        request = session.get(ErasureRequest, request_id)
        if request is None or request.status != "pending":
            return False
        lead_id = request.lead_id
        lead = session.get(Lead, lead_id)
        columns = {c: getattr(lead, c) for c in INDEX_COLUMNS if lead and getattr(lead, c)}
        indexes = frozenset(columns.values())
    counts = delete_linked_rows(context, org_id, lead_id)
    scrubbed = scrub_inbound_payloads(context, org_id, indexes) if indexes else 0
    with context.db.tenant(org_id) as session:
        query = select(ErasureRequest).where(ErasureRequest.id == request_id).with_for_update()
        request = session.scalars(query).one()
        if request.status != "pending":
            return False
        finish_erasure(session, request, indexes, now, {**counts, "payloads": scrubbed})
    if columns:
        journal_erasure(context, org_id, columns, now)
    return True


def delete_linked_rows(
    context: TaskContext, org_id: uuid.UUID, lead_id: uuid.UUID
) -> dict[str, int]:
    """Rows of every lead-linked table, children first. A maintenance session, so tables only
    maintenance may touch are included; the org_id condition keeps it to this tenant."""
    batch = context.settings.leadline_retention_batch_size
    counts: dict[str, int] = {}
    for table in reversed(lead_linked_tables()):
        where = {"lead_id": lead_id, **({"org_id": org_id} if "org_id" in table.c else {})}
        deleted = delete_all(context.db.maintenance, table, where, batch)
        if deleted:
            counts[table.name] = deleted
    return counts


def finish_erasure(
    session: Session,
    request: ErasureRequest,
    indexes: frozenset[bytes],
    now: datetime,
    counts: dict[str, int],
) -> None:
    lead = session.get(Lead, request.lead_id)
    if lead is not None:
        if indexes:
            session.add(tombstone_for(lead, now))
        session.delete(lead)
        counts["leads"] = 1
    request.status = "done"
    request.done_at = now
    request.details = {"rows": counts}
    record_audit(
        session,
        "system",
        "lead.erased",
        org_id=request.org_id,
        target=str(request.id),
        details={"lead_id": str(request.lead_id), "rows": counts, "overdue": now > request.due_at},
    )


def tombstone_for(lead: Lead, now: datetime) -> ErasureTombstone:
    return ErasureTombstone(
        org_id=lead.org_id,
        phone_bidx=lead.phone_bidx,
        email_bidx=lead.email_bidx,
        platform_bidx=lead.platform_bidx,
        created_at=now,
    )


def load_tombstones(session: Session) -> list[Tombstone]:
    rows = session.scalars(select(ErasureTombstone)).all()
    return [
        Tombstone(
            frozenset(getattr(row, c) for c in INDEX_COLUMNS if getattr(row, c)), row.created_at
        )
        for row in rows
    ]


def scrub_inbound_payloads(
    context: TaskContext, org_id: uuid.UUID, indexes: frozenset[bytes]
) -> int:
    """Payloads still held (inside the purge window) that mention the person lose them."""
    batch = context.settings.leadline_retention_batch_size
    scrubbed, last_id = 0, uuid.UUID(int=0)
    while True:
        with context.db.tenant(org_id) as session:
            cipher = context.keys.cipher(session, org_id)
            query = (
                select(InboundEvent)
                .where(and_(InboundEvent.payload_ct.is_not(None), InboundEvent.id > last_id))
                .order_by(InboundEvent.id)
                .limit(batch)
                .with_for_update(skip_locked=True)
            )
            events = session.scalars(query).all()
            for event in events:
                if event_mentions(cipher, event, indexes):
                    scrub_event(event)
                    scrubbed += 1
        if len(events) < batch:
            return scrubbed
        last_id = events[-1].id


def scrub_event(event: InboundEvent) -> None:
    event.payload_ct = None
    event.request_fingerprint = None  # a keyed hash of the same lead
    if event.status == "pending":
        event.status = "erased"  # never processed: it would bring the person back


def event_mentions(cipher: OrgCipher, event: InboundEvent, indexes: frozenset[bytes]) -> bool:
    return bool(event_identities(cipher, event.id, event.payload_ct) & indexes)


def event_identities(
    cipher: OrgCipher, event_id: uuid.UUID, payload_ct: bytes | None
) -> set[bytes]:
    """Blind indexes of everything in an inbound payload that could identify a person."""
    if payload_ct is None:
        return set()
    try:
        payload = json.loads(cipher.decrypt(payload_ct, "inbound_events", "payload_ct", event_id))
    except (CryptoError, ValueError):
        return set()
    return set(payload_indexes(cipher, payload))


def payload_indexes(cipher: OrgCipher, payload: object) -> Iterator[bytes]:
    """Blind indexes of every value in a payload that could identify a person."""
    for value in scalar_values(payload):
        yield cipher.blind_index("platform", value)
        if "@" in value:
            yield cipher.blind_index("email", normalize_email(value))
        phone = phone_or_none(value)
        if phone is not None:
            yield cipher.blind_index("phone", phone)


def phone_or_none(value: str) -> str | None:
    try:
        # over-match on purpose: a national-looking value is also tried as a US number
        return normalize_phone(value, default_region="US")
    except InvalidPhoneNumber:
        return None


def scalar_values(payload: object) -> Iterable[str]:
    if isinstance(payload, dict):
        for value in payload.values():
            yield from scalar_values(value)
    elif isinstance(payload, list):
        for value in payload:
            yield from scalar_values(value)
    elif isinstance(payload, str | int) and not isinstance(payload, bool):
        yield str(payload)
