"""Outbound webhooks: customers' endpoints, one delivery per (event, endpoint), every attempt.

The endpoint URL belongs to the customer's system, not to a person, so it is stored in clear;
signing secrets and payloads (which may carry shared lead fields) are ciphertext.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, now_column, org_fk, uuid_pk


class EventType(StrEnum):
    """The domain events a customer's endpoint may subscribe to (docs/webhooks.md)."""

    LEAD_CREATED = "lead.created"
    LEAD_UPDATED = "lead.updated"
    MESSAGE_RECEIVED = "message.received"
    MESSAGE_STATUS = "message.status"
    OPTOUT_CHANGED = "optout.changed"
    ENDPOINT_DISABLED = "endpoint.disabled"


class DeliveryState(StrEnum):
    """A webhook delivery: pending (due at next_attempt_at) → delivering (claimed) → delivered,
    or failed (schedule exhausted, endpoint disabled) or cancelled (endpoint disabled while it
    waited; `webhook recover` brings both back)."""

    PENDING = "pending"
    DELIVERING = "delivering"
    DELIVERED = "delivered"
    FAILED = "failed"
    CANCELLED = "cancelled"


class WebhookEndpoint(Base):
    __tablename__ = "webhook_endpoints"

    id: Mapped[uuid.UUID] = uuid_pk()
    org_id: Mapped[uuid.UUID] = org_fk()
    url: Mapped[str] = mapped_column(Text, nullable=False)
    description: Mapped[str | None] = mapped_column(String(500))
    event_types: Mapped[list[str]] = mapped_column(ARRAY(String(64)), nullable=False)
    shared_fields: Mapped[list[str]] = mapped_column(
        ARRAY(String(32)), nullable=False, server_default=text("'{}'")
    )
    secret_ct: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    previous_secret_ct: Mapped[bytes | None] = mapped_column(LargeBinary)
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    disabled_reason: Mapped[str | None] = mapped_column(String(200))
    disabled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    failing_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = now_column()
    updated_at: Mapped[datetime] = now_column()


class WebhookDelivery(Base):
    """One event for one endpoint. `event_id` is the stable `webhook-id` (msg_...)."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        CheckConstraint(
            "state IN ('pending', 'delivering', 'delivered', 'failed', 'cancelled')",
            name="state",
        ),
        Index(
            "ix_webhook_deliveries_due",
            "next_attempt_at",
            "id",
            postgresql_where=text("state = 'pending'"),
        ),
        Index(
            "ix_webhook_deliveries_claimed",
            "claimed_at",
            postgresql_where=text("state = 'delivering'"),
        ),
        Index("ix_webhook_deliveries_endpoint_created", "endpoint_id", "created_at"),
        Index(
            "ix_webhook_deliveries_lead", "lead_id", postgresql_where=text("lead_id IS NOT NULL")
        ),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    org_id: Mapped[uuid.UUID] = org_fk()
    endpoint_id: Mapped[uuid.UUID] = mapped_column(
        PG_UUID(as_uuid=True),
        ForeignKey("webhook_endpoints.id", ondelete="CASCADE"),
        nullable=False,
    )
    event_id: Mapped[str] = mapped_column(String(64), nullable=False)
    event_type: Mapped[str] = mapped_column(String(64), nullable=False)
    lead_id: Mapped[uuid.UUID | None] = mapped_column(PG_UUID(as_uuid=True))
    payload_ct: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    state: Mapped[str] = mapped_column(String(20), nullable=False, default="pending")
    attempt_count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    # Attempts since this moment drive the retry schedule; a resend or recover starts anew.
    cycle_started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_status: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(String(200))
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = now_column()
    updated_at: Mapped[datetime] = now_column()


class WebhookAttempt(Base):
    """One HTTP try. Holds the status or error class, never the receiver's response body."""

    __tablename__ = "webhook_attempts"
    __table_args__ = (
        Index("ix_webhook_attempts_delivery", "delivery_id", "started_at"),
        Index("ix_webhook_attempts_endpoint", "endpoint_id", "started_at"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    org_id: Mapped[uuid.UUID] = org_fk()
    delivery_id: Mapped[uuid.UUID] = mapped_column(
        PG_UUID(as_uuid=True),
        ForeignKey("webhook_deliveries.id", ondelete="CASCADE"),
        nullable=False,
    )
    endpoint_id: Mapped[uuid.UUID] = mapped_column(PG_UUID(as_uuid=True), nullable=False)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    duration_ms: Mapped[int] = mapped_column(Integer, nullable=False)
    outcome: Mapped[str] = mapped_column(String(20), nullable=False)
    status_code: Mapped[int | None] = mapped_column(Integer)
    error_class: Mapped[str | None] = mapped_column(String(40))
    error_text: Mapped[str | None] = mapped_column(String(200))
