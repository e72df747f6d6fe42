"""The core tables: organisations, their keys and API keys, inbound events, leads, audit log.

Every column holding PII is ciphertext (`*_ct`, see models.crypto) with an optional blind
index (`*_bidx`) for equality lookups. Every table but `organizations` carries `org_id` and is
guarded by row-level security (models.rls).
"""

from __future__ import annotations

import uuid
from datetime import datetime, time
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
    Time,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, now_column, org_fk, uuid_pk


class OrgStatus(StrEnum):
    ACTIVE = "active"
    CANCELLED = "cancelled"  # the subscription ended; deletion is due after the grace period
    DELETING = "deleting"  # keys shredded, rows being removed
    DELETED = "deleted"


class InboundSource(StrEnum):
    """Where an inbound event came from; each has a handler (tasks/wiring.py)."""

    API = "api"
    TWILIO_SMS = "twilio_sms"
    TWILIO_STATUS = "twilio_status"
    STRIPE = "stripe"
    TELEGRAM = "telegram"
    META = "meta"
    POSTMARK = "postmark"


class InboundEventStatus(StrEnum):
    PENDING = "pending"
    PROCESSED = "processed"
    FAILED = "failed"
    ERASED = "erased"  # its person was erased before it was processed


class LeadStatus(StrEnum):
    NEW = "new"
    CONTACTED = "contacted"
    QUALIFIED = "qualified"
    WON = "won"
    LOST = "lost"


class Organization(Base):
    __tablename__ = "organizations"

    id: Mapped[uuid.UUID] = uuid_pk()
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    status: Mapped[str] = mapped_column(String(20), nullable=False, default=OrgStatus.ACTIVE)
    created_at: Mapped[datetime] = now_column()
    deletion_due_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # ISO 3166 region national phone numbers are read in; None: E.164 required
    default_region: Mapped[str | None] = mapped_column(String(2))
    # The address the org's email goes out from (`leadline org settings ORG --email-from`): the
    # business's own, not a person's, so it is kept in clear. None: the org sends no email.
    email_from: Mapped[str | None] = mapped_column(String(254))
    # Local hours campaign messages may be sent in (models/quiet_hours.py); None: the default
    quiet_hours_start: Mapped[time | None] = mapped_column(Time)
    quiet_hours_end: Mapped[time | None] = mapped_column(Time)


class OrgKey(Base):
    """A data key (DEK) of an organisation, wrapped by a master key. Deleting these shreds."""

    __tablename__ = "org_keys"

    org_id: Mapped[uuid.UUID] = mapped_column(
        PG_UUID(as_uuid=True),
        ForeignKey("organizations.id", ondelete="CASCADE"),
        primary_key=True,
    )
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    kek_id: Mapped[str] = mapped_column(String(64), nullable=False)
    wrapped_dek: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    created_at: Mapped[datetime] = now_column()


class ApiKey(Base):
    __tablename__ = "api_keys"
    __table_args__ = (
        CheckConstraint("role IN ('ingest', 'member', 'admin', 'owner')", name="role"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    org_id: Mapped[uuid.UUID] = org_fk()
    prefix: Mapped[str] = mapped_column(String(32), nullable=False, unique=True)
    key_hash: Mapped[bytes] = mapped_column(LargeBinary, nullable=False, unique=True)
    # What the key may do (intake/permissions.py); keys older than roles are `owner`.
    role: Mapped[str] = mapped_column(String(16), nullable=False, server_default="owner")
    label: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = now_column()
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Set on a key replaced by a rotation: it keeps working until then.
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class InboundEvent(Base):
    """An accepted, verified request. The payload is ciphertext and is purged after use."""

    __tablename__ = "inbound_events"
    __table_args__ = (
        UniqueConstraint("org_id", "source", "external_id", name="uq_inbound_events_external"),
        Index(
            "ix_inbound_events_pending",
            "received_at",
            postgresql_where=text(f"status = '{InboundEventStatus.PENDING}'"),
        ),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    org_id: Mapped[uuid.UUID] = org_fk()
    source: Mapped[str] = mapped_column(String(32), nullable=False)
    external_id: Mapped[str | None] = mapped_column(String(255))
    payload_ct: Mapped[bytes | None] = mapped_column(LargeBinary)
    status: Mapped[str] = mapped_column(
        String(20), nullable=False, default=InboundEventStatus.PENDING
    )
    request_id: Mapped[str | None] = mapped_column(String(64))
    received_at: Mapped[datetime] = now_column()
    processed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    error: Mapped[str | None] = mapped_column(String(200))
    # keyed hash of the request an Idempotency-Key was first used with (models.routing)
    request_fingerprint: Mapped[bytes | None] = mapped_column(LargeBinary)
    optout_recorded_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The lead the event created or updated, once processed (GET /v1/events/{id}). Not named
    # `lead_id`: erasure deletes the rows of every table with that column (models.retention),
    # and an event row outlives its person's erasure (it deduplicates the Idempotency-Key).
    processed_lead_id: Mapped[uuid.UUID | None] = mapped_column(PG_UUID(as_uuid=True))


class Lead(Base):
    __tablename__ = "leads"
    __table_args__ = (
        Index(
            "uq_leads_phone",
            "org_id",
            "phone_bidx",
            unique=True,
            postgresql_where=text("phone_bidx IS NOT NULL"),
        ),
        Index(
            "uq_leads_email",
            "org_id",
            "email_bidx",
            unique=True,
            postgresql_where=text("email_bidx IS NOT NULL"),
        ),
        Index(
            "uq_leads_platform",
            "org_id",
            "platform_bidx",
            unique=True,
            postgresql_where=text("platform_bidx IS NOT NULL"),
        ),
        Index("ix_leads_org_created_id", "org_id", "created_at", "id"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    org_id: Mapped[uuid.UUID] = org_fk()
    name_ct: Mapped[bytes | None] = mapped_column(LargeBinary)
    phone_ct: Mapped[bytes | None] = mapped_column(LargeBinary)
    email_ct: Mapped[bytes | None] = mapped_column(LargeBinary)
    first_message_ct: Mapped[bytes | None] = mapped_column(LargeBinary)
    first_message_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    phone_bidx: Mapped[bytes | None] = mapped_column(LargeBinary)
    email_bidx: Mapped[bytes | None] = mapped_column(LargeBinary)
    platform_bidx: Mapped[bytes | None] = mapped_column(LargeBinary)
    # Where a Meta lead can be answered: `platform:user id` (encrypted), the business account
    # it wrote to, and when it last wrote (WhatsApp's 24-hour customer-service window).
    platform_user_ct: Mapped[bytes | None] = mapped_column(LargeBinary)
    platform_account: Mapped[str | None] = mapped_column(String(64))
    platform_last_inbound_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    source: Mapped[str] = mapped_column(String(64), nullable=False, default="api")
    status: Mapped[str] = mapped_column(String(20), nullable=False, default=LeadStatus.NEW)
    sms_consent: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    consent_text_ct: Mapped[bytes | None] = mapped_column(LargeBinary)
    consent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    consent_source: Mapped[str | None] = mapped_column(String(64))
    # The latest SMS consent given (consent_at is the first): a campaign needs it newer than
    # any opt-out from the lead's number.
    last_consent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Marketing email consent (docs/messaging.md "Email consent"), given with an email address;
    # its text joins the same evidence list as the SMS consent's.
    email_consent: Mapped[bool] = mapped_column(
        Boolean, nullable=False, default=False, server_default=text("false")
    )
    email_consent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Who in the business handles the lead: an opaque string from the tenant's product.
    assignee_ct: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = now_column()
    updated_at: Mapped[datetime] = now_column()


class AuditEntry(Base):
    """Who did what, when. Never holds PII: targets are ids, details are counts and codes."""

    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_org_created", "org_id", "created_at"),
        # Every opt-out a number ever sent, lifted or not (models/campaigns.py)
        Index(
            "ix_audit_log_optout_target",
            "org_id",
            "target",
            "created_at",
            postgresql_where=text("action = 'optout.added'"),
        ),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    org_id: Mapped[uuid.UUID | None] = mapped_column(PG_UUID(as_uuid=True))
    actor: Mapped[str] = mapped_column(String(200), nullable=False)
    action: Mapped[str] = mapped_column(String(100), nullable=False)
    target: Mapped[str | None] = mapped_column(Text)
    details: Mapped[dict[str, object]] = mapped_column(JSONB, nullable=False, default=dict)
    created_at: Mapped[datetime] = now_column()
