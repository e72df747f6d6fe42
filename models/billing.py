"""Stripe billing state per organisation, routed by Stripe customer id.

Events arrive out of order, so each row remembers the `created` time of the last event it
applied; an older event changes nothing.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import DateTime, String, UniqueConstraint, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from leadline.errors import LeadlineError
from models.audit import record_audit
from models.base import Base, now_column, org_fk, uuid_pk


class AlreadyLinked(LeadlineError):
    """The provider identifier already belongs to another organisation."""


class OrgBilling(Base):
    __tablename__ = "org_billing"
    __table_args__ = (UniqueConstraint("org_id", name="uq_org_billing_org"),)

    id: Mapped[uuid.UUID] = uuid_pk()
    org_id: Mapped[uuid.UUID] = org_fk()
    stripe_customer_id: Mapped[str] = mapped_column(String(255), nullable=False, unique=True)
    status: Mapped[str] = mapped_column(String(20), nullable=False, default="none")
    subscription_id: Mapped[str | None] = mapped_column(String(255))
    last_event_id: Mapped[str | None] = mapped_column(String(255))
    last_event_created: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    cancelled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    deletion_due_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = now_column()
    updated_at: Mapped[datetime] = now_column()


def link_stripe_customer(
    session: Session, org_id: uuid.UUID, customer_id: str, actor: str = "cli"
) -> None:
    """Route the customer's events to `org_id` (tenant session). Raises AlreadyLinked."""
    row = session.scalars(select(OrgBilling).where(OrgBilling.org_id == org_id)).first()
    try:
        with session.begin_nested():
            if row is None:
                session.add(OrgBilling(org_id=org_id, stripe_customer_id=customer_id))
            else:
                row.stripe_customer_id = customer_id
            session.flush()
    except IntegrityError:
        raise AlreadyLinked("that Stripe customer is linked to another organisation") from None
    record_audit(session, actor, "billing.stripe_linked", org_id=org_id, target=customer_id)


def org_for_stripe_customer(session: Session, customer_id: str) -> uuid.UUID | None:
    """Maintenance scope: the org is not known before this lookup."""
    org_id: uuid.UUID | None = session.scalar(
        select(OrgBilling.org_id).where(OrgBilling.stripe_customer_id == customer_id)
    )
    return org_id
