"""Opt-outs: who must never be texted by an org. Keyed by the recipient's blind index only.

History lives in the audit log (action optout.added / optout.removed, target the blind index
in hex, details the reason), never the number itself.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import delete, exists, func, literal_column, select
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
    An existing suppression takes the later of the two times: a START lifts only what was
    said before it, so STOP, START, STOP ends opted out whatever order the START is seen in.
    """
    values = {"id": uuid.uuid4(), "org_id": org_id, "recipient_bidx": recipient_bidx}
    if requested_at is not None:
        values["created_at"] = requested_at
    statement = insert(Suppression).values(reason=reason, **values)
    inserted: bool = session.execute(
        statement.on_conflict_do_update(
            constraint="uq_suppressions_recipient",
            set_={
                "created_at": func.greatest(Suppression.created_at, statement.excluded.created_at)
            },
        ).returning(literal_column("xmax = 0"))
    ).scalar_one()
    if not inserted:
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
