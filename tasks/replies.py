"""A reply to a lead from the business (POST /v1/leads/{id}/messages): by SMS, or on the
Instagram, Messenger or WhatsApp conversation the lead started, through the org's connection
of that kind. One row in the same outbox as every other message, so it is sent at most once
and checked against opt-outs again when it is claimed. Refused up front, with nothing queued,
when the recipient opted out on that channel, when there is no conversation or connection to
answer on, and on WhatsApp when the customer-service window (24 hours since the customer's
last message) is closed: only an approved template may be sent then."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from leadline.errors import LeadlineError, NotFoundError
from models.alert_settings import org_sender
from models.audit import record_audit
from models.connections import active_connection
from models.crypto import OrgCipher
from models.leads import TABLE
from models.messaging import SOCIAL_CHANNELS, Channel, ConversationMessage, OutboundMessage
from models.outbound_messages import NewOutbound, QueuedOutbound, queue_outbound
from models.tables import Lead
from tasks.after_commit import AfterCommit
from tasks.optouts import is_opted_out
from tasks.sending import add_send

PURPOSE = "reply"
WHATSAPP_WINDOW = timedelta(hours=24)


class OptedOutError(LeadlineError):
    """The lead's number is suppressed: nothing may be sent to it."""


class NoPhoneError(LeadlineError):
    """The lead has no phone number to reply to."""


class NoConversationError(LeadlineError):
    """The lead has not written on that channel: there is no one to answer there."""


class NotConnectedError(LeadlineError):
    """The org has no active connection for the account the lead wrote to."""


class TemplateRequiredError(LeadlineError):
    """WhatsApp: more than 24 hours since the customer's last message; a free-form reply is
    refused by Meta, only an approved template may be sent."""


@dataclass(frozen=True)
class Reply:
    lead_id: uuid.UUID
    body: str
    idempotency_key: str
    channel: str = Channel.SMS


def queue_reply(
    session: Session,
    cipher: OrgCipher,
    reply: Reply,
    default_sender: str | None,
    actor: str,
    after_commit: AfterCommit,
    now: datetime,
) -> QueuedOutbound:
    """Queue the reply; the same idempotency key again answers the message it queued."""
    lead = session.get(Lead, reply.lead_id)
    if lead is None:
        raise NotFoundError("lead not found")
    if reply.channel in SOCIAL_CHANNELS:
        message = social_reply(session, cipher, lead, reply, now)
    else:
        message = sms_reply(session, cipher, lead, reply, default_sender)
    queued = queue_outbound(session, cipher, [message], now)
    for row in queued:
        add_send(after_commit, row.channel, lead.org_id, row.id)
        record_audit(
            session,
            actor,
            "message.replied",
            org_id=lead.org_id,
            target=str(lead.id),
            details={"message_id": str(row.id), "channel": row.channel},
        )
    return queued[0] if queued else already_queued(session, message.idempotency_key)


def sms_reply(
    session: Session, cipher: OrgCipher, lead: Lead, reply: Reply, default_sender: str | None
) -> NewOutbound:
    if lead.phone_bidx is None or lead.phone_ct is None:
        raise NoPhoneError("the lead has no phone number")
    if is_opted_out(session, lead.org_id, lead.phone_bidx):
        raise OptedOutError("the lead's number opted out (only their START lifts it)")
    phone = cipher.decrypt_text(lead.phone_ct, TABLE, "phone_ct", lead.id)
    assert phone is not None
    return NewOutbound(
        channel="sms",
        purpose=PURPOSE,
        idempotency_key=f"reply:{lead.id}:{reply.idempotency_key}",
        recipient=phone,
        recipient_bidx=lead.phone_bidx,
        body=reply.body,
        sender=org_sender(session, default_sender),
        lead_id=lead.id,
        reply_to_at=last_inbound_at(session, lead.id),
    )


def social_reply(
    session: Session, cipher: OrgCipher, lead: Lead, reply: Reply, now: datetime
) -> NewOutbound:
    platform_user = cipher.decrypt_text(lead.platform_user_ct, TABLE, "platform_user_ct", lead.id)
    platform, _, user_id = (platform_user or "").partition(":")
    if platform != reply.channel or not user_id or lead.platform_bidx is None:
        raise NoConversationError(f"the lead has no {reply.channel} conversation")
    if is_opted_out(session, lead.org_id, lead.platform_bidx):
        raise OptedOutError(f"the lead opted out on {reply.channel}")
    connection = active_connection(session, reply.channel, lead.platform_account)
    if connection is None:
        raise NotConnectedError(f"no active {reply.channel} connection for that account")
    last = lead.platform_last_inbound_at
    if reply.channel == Channel.WHATSAPP and (last is None or now - last > WHATSAPP_WINDOW):
        raise TemplateRequiredError("outside WhatsApp's 24-hour customer-service window")
    return NewOutbound(
        channel=reply.channel,
        purpose=PURPOSE,
        idempotency_key=f"reply:{lead.id}:{reply.idempotency_key}",
        recipient=user_id,
        recipient_bidx=lead.platform_bidx,
        body=reply.body,
        lead_id=lead.id,
        connection_id=connection.id,
    )


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
