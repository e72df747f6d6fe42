"""Opt-outs: who must never be texted by an org. Keyed by the recipient's blind index only.

History lives in the audit log (action optout.added / optout.removed, target the blind index
in hex, details the reason), never the number itself.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import delete, exists, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from models.audit import record_audit
from models.crypto import OrgCipher
from models.messaging import Suppression
from models.normalize import normalize_phone

PHONE_INDEX = "phone"


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
