"""A reply to a lead by SMS from the business (POST /v1/leads/{id}/messages): one row in the
same outbox as every other SMS, so it is sent at most once and checked against opt-outs again
when it is claimed. Refused up front, with nothing queued, when the number opted out."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from leadline.errors import LeadlineError, NotFoundError
from models.alert_settings import org_sender
from models.audit import record_audit
from models.crypto import OrgCipher
from models.leads import TABLE
from models.messaging import ConversationMessage, OutboundMessage
from models.outbound_messages import NewOutbound, QueuedOutbound, queue_outbound
from models.tables import Lead
from tasks.after_commit import AfterCommit
from tasks.optouts import is_opted_out
from tasks.sending import add_send

PURPOSE = "reply"


class OptedOutError(LeadlineError):
    """The lead's number is suppressed: nothing may be sent to it."""


class NoPhoneError(LeadlineError):
    """The lead has no phone number to reply to."""


def queue_reply(
    session: Session,
    cipher: OrgCipher,
    lead_id: uuid.UUID,
    body: str,
    idempotency_key: str,
    default_sender: str | None,
    actor: str,
    after_commit: AfterCommit,
    now: datetime,
) -> QueuedOutbound:
    """Queue the reply; the same idempotency key again answers the message it queued."""
    lead = session.get(Lead, lead_id)
    if lead is None:
        raise NotFoundError("lead not found")
    if lead.phone_bidx is None or lead.phone_ct is None:
        raise NoPhoneError("the lead has no phone number")
    if is_opted_out(session, lead.org_id, lead.phone_bidx):
        raise OptedOutError("the lead's number opted out (only their START lifts it)")
    phone = cipher.decrypt_text(lead.phone_ct, TABLE, "phone_ct", lead.id)
    assert phone is not None
    message = NewOutbound(
        channel="sms",
        purpose=PURPOSE,
        idempotency_key=f"reply:{lead.id}:{idempotency_key}",
        recipient=phone,
        recipient_bidx=lead.phone_bidx,
        body=body,
        sender=org_sender(session, default_sender),
        lead_id=lead.id,
        reply_to_at=last_inbound_at(session, lead.id),
    )
    queued = queue_outbound(session, cipher, [message], now)
    for row in queued:
        add_send(after_commit, row.channel, lead.org_id, row.id)
        record_audit(
            session,
            actor,
            "message.replied",
            org_id=lead.org_id,
            target=str(lead.id),
            details={"message_id": str(row.id)},
        )
    return queued[0] if queued else already_queued(session, message.idempotency_key)


def last_inbound_at(session: Session, lead_id: uuid.UUID) -> datetime | None:
    """When the lead last wrote to the business: a reply within 24 h of it is not held for
    quiet hours (models/quiet_hours.py)."""
    query = select(func.max(ConversationMessage.created_at)).where(
        ConversationMessage.lead_id == lead_id, ConversationMessage.direction == "inbound"
    )
    latest: datetime | None = session.scalar(query)
    return latest


def already_queued(session: Session, key: str) -> QueuedOutbound:
    row = session.scalars(
        select(OutboundMessage).where(OutboundMessage.idempotency_key == key)
    ).one()
    return QueuedOutbound(row.id, row.channel, row.state, row.next_attempt_at)
