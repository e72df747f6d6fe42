"""A lead's conversation: the SMS they sent us and the SMS we sent them, oldest first, with
the delivery state of ours. Alerts about the lead (to the business's own numbers) are not
part of it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from models.crypto import OrgCipher
from models.messaging import SOCIAL_CHANNELS, Channel, ConversationMessage, OutboundMessage
from models.pagination import Position, after

CONVERSATION_TABLE = "conversation_messages"
OUTBOUND_TABLE = "outbound_messages"
# Outbound purposes addressed to the lead themself.
TO_THE_LEAD = ("lead_autoreply", "help_reply", "campaign", "reply")
# Telegram only carries alerts to the business; every other channel reaches the lead.
LEAD_CHANNELS = sorted({Channel.SMS, *SOCIAL_CHANNELS})


@dataclass(frozen=True)
class ConversationEntry:
    id: uuid.UUID
    direction: str  # inbound | outbound
    channel: str
    body: str
    state: str | None  # outbound only: queued, sending, sent, delivered, ..., blocked
    purpose: str | None
    created_at: datetime


def conversation(
    session: Session,
    cipher: OrgCipher,
    lead_id: uuid.UUID,
    position: Position | None,
    limit: int,
) -> list[ConversationEntry]:
    """Tenant session: up to `limit` messages after `position`, oldest first."""
    entries = inbound(session, cipher, lead_id, position, limit) + outbound(
        session, cipher, lead_id, position, limit
    )
    entries.sort(key=lambda entry: (entry.created_at, entry.id))
    return entries[:limit]


def inbound(
    session: Session, cipher: OrgCipher, lead_id: uuid.UUID, position: Position | None, limit: int
) -> list[ConversationEntry]:
    query = select(ConversationMessage).where(ConversationMessage.lead_id == lead_id)
    if position is not None:
        query = query.where(
            after(ConversationMessage.created_at, ConversationMessage.id, position, False)
        )
    query = query.order_by(ConversationMessage.created_at, ConversationMessage.id).limit(limit)
    return [
        ConversationEntry(
            row.id,
            row.direction,
            row.channel,
            cipher.decrypt(row.body_ct, CONVERSATION_TABLE, "body_ct", row.id).decode(),
            None,
            None,
            row.created_at,
        )
        for row in session.scalars(query)
    ]


def outbound(
    session: Session, cipher: OrgCipher, lead_id: uuid.UUID, position: Position | None, limit: int
) -> list[ConversationEntry]:
    query = select(OutboundMessage).where(
        OutboundMessage.lead_id == lead_id,
        OutboundMessage.channel.in_(LEAD_CHANNELS),
        OutboundMessage.purpose.in_(TO_THE_LEAD),
    )
    if position is not None:
        query = query.where(after(OutboundMessage.created_at, OutboundMessage.id, position, False))
    query = query.order_by(OutboundMessage.created_at, OutboundMessage.id).limit(limit)
    return [
        ConversationEntry(
            row.id,
            "outbound",
            row.channel,
            cipher.decrypt(row.body_ct, OUTBOUND_TABLE, "body_ct", row.id).decode(),
            row.state,
            row.purpose,
            row.created_at,
        )
        for row in session.scalars(query)
    ]
