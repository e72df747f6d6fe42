"""Messaging tables: outbound SMS/Telegram rows, opt-out suppressions, conversations,
alert settings, campaigns and per-sender pacing.

Recipients and bodies are ciphertext; lookups go through blind indexes. A suppression holds
only the recipient's blind index and no lead id, so erasing a person never lifts their STOP.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    Boolean,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.orm import Mapped, mapped_column

from leadline.jsondata import JsonObject
from models.base import Base, now_column, org_fk, uuid_pk


class OutboundState(StrEnum):
    """An outbound message's life (docs/messaging.md): queued → sending → sent → delivered or
    undelivered; or failed, blocked (opted out, chat unlinked), unknown (maybe sent); held
    (outside the recipient's quiet hours, until `not_before`)."""

    QUEUED = "queued"
    HELD = "held"
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    UNDELIVERED = "undelivered"
    FAILED = "failed"
    BLOCKED = "blocked"
    UNKNOWN = "unknown"


class Channel(StrEnum):
    SMS = "sms"
    TELEGRAM = "telegram"
    EMAIL = "email"
    INSTAGRAM = "instagram"
    MESSENGER = "messenger"
    WHATSAPP = "whatsapp"


SOCIAL_CHANNELS = frozenset({Channel.INSTAGRAM, Channel.MESSENGER, Channel.WHATSAPP})


class OutboundMessage(Base):
    """One SMS, Telegram message or email to send, at most once. See docs/messaging.md for
    states. An email's body_ct holds its subject, text and headers (models/email_content.py)."""

    __tablename__ = "outbound_messages"
    __table_args__ = (
        UniqueConstraint("org_id", "idempotency_key", name="uq_outbound_messages_key"),
        Index(
            "ix_outbound_messages_waiting",
            "state",
            "next_attempt_at",
            postgresql_where=text("state IN ('queued', 'sending')"),
        ),
        Index(
            "ix_outbound_messages_sid",
            "org_id",
            "provider_sid",
            postgresql_where=text("provider_sid IS NOT NULL"),
        ),
        Index("ix_outbound_messages_lead", "lead_id"),
        Index("ix_outbound_messages_campaign", "campaign_id", "state"),
        Index(
            "ix_outbound_messages_unknown",
            "updated_at",
            postgresql_where=text("state = 'unknown'"),
        ),
        Index(
            "ix_outbound_messages_held",
            "not_before",
            postgresql_where=text("state = 'held'"),
        ),
        Index(
            "ix_outbound_messages_carrier_rejected",
            "updated_at",
            postgresql_where=text("last_error_code IN ('30007', '30034')"),
        ),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    org_id: Mapped[uuid.UUID] = org_fk()
    channel: Mapped[str] = mapped_column(String(16), nullable=False)
    purpose: Mapped[str] = mapped_column(String(32), nullable=False)
    idempotency_key: Mapped[str] = mapped_column(String(200), nullable=False)
    recipient_ct: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    recipient_bidx: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    body_ct: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    # The business's own sending number (not a person's), so it is kept in clear for pacing.
    sender: Mapped[str | None] = mapped_column(String(20))
    lead_id: Mapped[uuid.UUID | None] = mapped_column(PG_UUID(as_uuid=True))
    campaign_id: Mapped[uuid.UUID | None] = mapped_column(PG_UUID(as_uuid=True))
    telegram_chat_id: Mapped[uuid.UUID | None] = mapped_column(PG_UUID(as_uuid=True))
    # Instagram, Messenger and WhatsApp messages go out through this connection's token.
    connection_id: Mapped[uuid.UUID | None] = mapped_column(PG_UUID(as_uuid=True))
    state: Mapped[str] = mapped_column(String(16), nullable=False, default="queued")
    provider_sid: Mapped[str | None] = mapped_column(String(64))
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    last_error_code: Mapped[str | None] = mapped_column(String(32))
    next_attempt_at: Mapped[datetime] = now_column()
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    provider_call_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Held for quiet hours: the first instant the recipient's window is open in all its zones.
    not_before: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # When the lead's inbound message this one answers arrived (quiet hours do not apply
    # within 24 h of it); None for messages nobody asked for (campaigns).
    reply_to_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = now_column()
    updated_at: Mapped[datetime] = now_column()


class Suppression(Base):
    """A recipient who opted out of this org's messages: a phone number (lifted only by
    START/UNSTOP/YES) or an email address (a hard bounce, spam complaint or unsubscribe; never
    lifted). A blind index hashes its kind with the value (models.crypto), so a phone's and an
    email's never collide."""

    __tablename__ = "suppressions"
    __table_args__ = (
        UniqueConstraint("org_id", "recipient_bidx", name="uq_suppressions_recipient"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    org_id: Mapped[uuid.UUID] = org_fk()
    recipient_bidx: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    reason: Mapped[str] = mapped_column(String(32), nullable=False)
    # An opt-out recorded by the business (POST /v1/suppressions): what it noted, encrypted.
    note_ct: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = now_column()


class ConversationMessage(Base):
    """A message a lead sent to the business (kept encrypted for the conversation view)."""

    __tablename__ = "conversation_messages"
    __table_args__ = (
        Index(
            "uq_conversation_messages_sid",
            "org_id",
            "provider_sid",
            unique=True,
            postgresql_where=text("provider_sid IS NOT NULL"),
        ),
        Index("ix_conversation_messages_lead", "lead_id", "created_at"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    org_id: Mapped[uuid.UUID] = org_fk()
    lead_id: Mapped[uuid.UUID] = mapped_column(PG_UUID(as_uuid=True), nullable=False)
    direction: Mapped[str] = mapped_column(String(16), nullable=False, default="inbound")
    channel: Mapped[str] = mapped_column(String(16), nullable=False, default="sms")
    body_ct: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    provider_sid: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = now_column()


class AlertNumber(Base):
    """A phone number of the business that receives lead alerts by SMS."""

    __tablename__ = "alert_numbers"
    __table_args__ = (UniqueConstraint("org_id", "number_bidx", name="uq_alert_numbers_number"),)

    id: Mapped[uuid.UUID] = uuid_pk()
    org_id: Mapped[uuid.UUID] = org_fk()
    number_ct: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    number_bidx: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    created_at: Mapped[datetime] = now_column()


class AlertEmail(Base):
    """An email address of the business that receives lead alerts by email."""

    __tablename__ = "alert_emails"
    __table_args__ = (UniqueConstraint("org_id", "address_bidx", name="uq_alert_emails_address"),)

    id: Mapped[uuid.UUID] = uuid_pk()
    org_id: Mapped[uuid.UUID] = org_fk()
    address_ct: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    address_bidx: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    created_at: Mapped[datetime] = now_column()


class MessagingSettings(Base):
    """Per-org templates and program details (business text, not PII)."""

    __tablename__ = "messaging_settings"

    org_id: Mapped[uuid.UUID] = mapped_column(PG_UUID(as_uuid=True), primary_key=True)
    templates: Mapped[dict[str, str]] = mapped_column(JSONB, nullable=False, default=dict)
    program_name: Mapped[str | None] = mapped_column(String(100))
    help_contact: Mapped[str | None] = mapped_column(String(200))
    frequency: Mapped[str | None] = mapped_column(String(100))
    autoreply: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    updated_at: Mapped[datetime] = now_column()


class Campaign(Base):
    """A re-engagement campaign by SMS or email; its counts come from its outbound_messages."""

    __tablename__ = "campaigns"
    __table_args__ = (UniqueConstraint("org_id", "idempotency_key", name="uq_campaigns_key"),)

    id: Mapped[uuid.UUID] = uuid_pk()
    org_id: Mapped[uuid.UUID] = org_fk()
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    template: Mapped[str] = mapped_column(Text, nullable=False)
    filter: Mapped[JsonObject] = mapped_column(JSONB, nullable=False, default=dict)
    idempotency_key: Mapped[str] = mapped_column(String(255), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="pending")
    channel: Mapped[str] = mapped_column(
        String(16), nullable=False, default="sms", server_default="sms"
    )
    targeted: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    created_at: Mapped[datetime] = now_column()
    launched_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class SenderPacing(Base):
    """The next free send slot of a sending number. Cross-tenant: numbers can be shared."""

    __tablename__ = "sender_pacing"

    sender: Mapped[str] = mapped_column(String(20), primary_key=True)
    next_slot_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
