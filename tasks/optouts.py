"""Opt-out changes, one way for every path: suppression row, audit entry, `optout.changed`.

Callers: the intake (an inbound STOP is recorded with the event, before the 2xx), the worker
(an inbound START, or a STOP stored before the intake did this), and Twilio's 21610 (a refused
send, a status callback). Each change publishes once: a suppression that already exists is
not recorded, audited or published again, so every caller is idempotent.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from models.crypto import OrgCipher
from models.suppressions import lift_suppression, suppress
from models.tables import Lead
from tasks.after_commit import AfterCommit
from tasks.registry import DomainEvent, publish


@dataclass(frozen=True)
class OptoutChange:
    """Who (blind index), why, on whose behalf; where to publish, inside the caller's session."""

    session: Session
    cipher: OrgCipher
    recipient_bidx: bytes
    reason: str
    actor: str
    after_commit: AfterCommit
    now: datetime
    lead_id: uuid.UUID | None = None
    # When the request reached us (an inbound event's received_at); None means now.
    requested_at: datetime | None = None


def record_optout(change: OptoutChange) -> bool:
    """Suppress, audit and publish; False (and nothing published) if already suppressed."""
    org_id = change.cipher.org_id
    if not suppress(
        change.session,
        org_id,
        change.recipient_bidx,
        change.reason,
        change.actor,
        change.lead_id,
        requested_at=change.requested_at,
    ):
        return False
    _publish(change, opted_out=True)
    return True


def lift_optout(change: OptoutChange, requested_at: datetime) -> bool:
    """Lift a suppression recorded before `requested_at` (when the START was received).

    A STOP received after the START keeps its suppression, whatever order the worker sees.
    """
    org_id = change.cipher.org_id
    if not lift_suppression(
        change.session,
        org_id,
        change.recipient_bidx,
        change.reason,
        change.actor,
        change.lead_id,
        recorded_before=requested_at,
    ):
        return False
    _publish(change, opted_out=False)
    return True


def lead_id_for(session: Session, recipient_bidx: bytes) -> uuid.UUID | None:
    """The org's lead with this phone (the tenant scope picks the org), if any."""
    query = select(Lead.id).where(Lead.phone_bidx == recipient_bidx).limit(1)
    return session.scalar(query)


def optout_data(lead_id: uuid.UUID | None, opted_out: bool, reason: str) -> dict[str, Any]:
    return {
        "lead_id": str(lead_id) if lead_id else None,
        "opted_out": opted_out,
        "reason": reason,
        "channel": "sms",
    }


def _publish(change: OptoutChange, opted_out: bool) -> None:
    data = optout_data(change.lead_id, opted_out, change.reason)
    publish(
        DomainEvent(
            change.session, change.cipher, "optout.changed", data, change.after_commit, change.now
        )
    )
