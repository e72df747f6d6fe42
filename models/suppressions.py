"""Opt-outs: who must never be texted by an org. Keyed by the recipient's blind index only.

History lives in the audit log (action optout.added / optout.removed, target the blind index
in hex, details the reason), never the number itself.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, delete, exists, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from models.audit import record_audit
from models.crypto import OrgCipher
from models.messaging import Suppression
from models.normalize import normalize_phone
from models.pagination import Position, after
from models.tables import Lead

PHONE_INDEX = "phone"
TABLE = "suppressions"
LEADS_TABLE = "leads"
# How a business may have received an opt-out it records (POST /v1/suppressions).
REPORTED_CHANNELS = ("phone", "email", "in_person", "letter", "other")
REPORTED_PREFIX = "reported_"


@dataclass(frozen=True)
class SuppressionRecord:
    """An opt-out as the tenant API shows it: the lead it matches (if any, with its phone),
    why, how it reached the business, and the business's note."""

    id: uuid.UUID
    lead_id: uuid.UUID | None
    phone: str | None
    reason: str
    note: str | None
    created_at: datetime


def list_suppressions(
    session: Session, cipher: OrgCipher, position: Position | None, limit: int
) -> list[SuppressionRecord]:
    """Tenant session: newest first. A suppression keeps only a blind index, so the number
    shown is the matching lead's (none once that person was erased)."""
    query = select(Suppression, Lead.id, Lead.phone_ct).outerjoin(
        Lead, and_(Lead.org_id == Suppression.org_id, Lead.phone_bidx == Suppression.recipient_bidx)
    )
    if position is not None:
        query = query.where(after(Suppression.created_at, Suppression.id, position, True))
    query = query.order_by(Suppression.created_at.desc(), Suppression.id.desc()).limit(limit)
    return [
        SuppressionRecord(
            row.id,
            lead_id,
            cipher.decrypt_text(phone_ct, LEADS_TABLE, "phone_ct", lead_id) if lead_id else None,
            row.reason,
            cipher.decrypt_text(row.note_ct, TABLE, "note_ct", row.id),
            row.created_at,
        )
        for row, lead_id, phone_ct in session.execute(query).tuples()
    ]


def find_suppression(session: Session, recipient_bidx: bytes) -> Suppression | None:
    return session.scalars(
        select(Suppression).where(Suppression.recipient_bidx == recipient_bidx)
    ).first()


def annotate(cipher: OrgCipher, row: Suppression, note: str | None) -> None:
    """Keep the business's note on a suppression it recorded, encrypted (it may name people)."""
    row.note_ct = cipher.encrypt_text(note, TABLE, "note_ct", row.id)


def phone_index(cipher: OrgCipher, phone: str) -> bytes:
    """The blind index used for leads, alert numbers, outbound SMS and suppressions alike."""
    return cipher.blind_index(PHONE_INDEX, normalize_phone(phone))


def is_suppressed(session: Session, org_id: uuid.UUID, recipient_bidx: bytes) -> bool:
    query = select(
        exists().where(Suppression.org_id == org_id, Suppression.recipient_bidx == recipient_bidx)
    )
    return bool(session.scalar(query))


def suppress(
    session: Session,
    org_id: uuid.UUID,
    recipient_bidx: bytes,
    reason: str,
    actor: str,
    lead_id: uuid.UUID | None = None,
    requested_at: datetime | None = None,
) -> bool:
    """Record an opt-out. Returns False when the recipient was already suppressed.

    `requested_at`: when the opt-out reached us (default: now), which a START compares with.
    """
    values = {"id": uuid.uuid4(), "org_id": org_id, "recipient_bidx": recipient_bidx}
    if requested_at is not None:
        values["created_at"] = requested_at
    inserted = session.execute(
        insert(Suppression)
        .values(reason=reason, **values)
        .on_conflict_do_nothing(constraint="uq_suppressions_recipient")
        .returning(Suppression.id)
    ).scalar_one_or_none()
    if inserted is None:
        return False
    _audit(session, org_id, recipient_bidx, "optout.added", reason, actor, lead_id)
    return True


def lift_suppression(
    session: Session,
    org_id: uuid.UUID,
    recipient_bidx: bytes,
    reason: str,
    actor: str,
    lead_id: uuid.UUID | None = None,
    recorded_before: datetime | None = None,
) -> bool:
    """Remove an opt-out (only START/UNSTOP/YES from that number, or an operator).

    With `recorded_before` (when the START arrived), a suppression recorded later stays.
    """
    query = delete(Suppression).where(
        Suppression.org_id == org_id, Suppression.recipient_bidx == recipient_bidx
    )
    if recorded_before is not None:
        query = query.where(Suppression.created_at < recorded_before)
    removed = session.execute(query.returning(Suppression.id)).first()
    if removed is None:
        return False
    _audit(session, org_id, recipient_bidx, "optout.removed", reason, actor, lead_id)
    return True


def _audit(
    session: Session,
    org_id: uuid.UUID,
    recipient_bidx: bytes,
    action: str,
    reason: str,
    actor: str,
    lead_id: uuid.UUID | None,
) -> None:
    details = {"reason": reason, "channel": "sms"}
    if lead_id is not None:
        details["lead_id"] = str(lead_id)
    record_audit(
        session,
        actor,
        action,
        org_id=org_id,
        target=f"recipient:{recipient_bidx.hex()}",
        details=details,
    )
