"""Campaigns: creation (once per Idempotency-Key), targeting, pacing slots, counts."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypedDict

from sqlalchemy import and_, exists, func, literal, or_, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql.elements import ColumnElement

from leadline.jsondata import JsonObject, text_of
from models.audit import OPTOUT_ADDED, record_audit
from models.messaging import Campaign, Suppression
from models.outbound_messages import count_by_state
from models.pagination import Position, after
from models.tables import AuditEntry, Lead

COUNT_GROUPS = {
    "queued": ("queued", "sending"),
    "held": ("held",),
    "sent": ("sent", "delivered", "undelivered"),
    "delivered": ("delivered",),
    "blocked": ("blocked",),
    "failed": ("failed",),
    "unknown": ("unknown",),
}


@dataclass(frozen=True)
class CampaignSpec:
    name: str
    template: str
    filter: JsonObject
    channel: str = "sms"

    def same_as(self, campaign: Campaign) -> bool:
        """Whether `campaign` was created from this very request (an Idempotency-Key replay)."""
        stored = (campaign.name, campaign.template, campaign.filter, campaign.channel)
        return stored == (self.name, self.template, self.filter, self.channel)


class CampaignView(TypedDict):
    """A campaign as the API and the CLI show it."""

    id: str
    name: str
    channel: str
    status: str
    created_at: str
    launched_at: str | None
    counts: dict[str, int]  # targeted, then per group of COUNT_GROUPS


@dataclass(frozen=True)
class CreatedCampaign:
    id: uuid.UUID
    created: bool
    same_request: bool


@dataclass(frozen=True)
class CampaignTarget:
    lead: Lead
    suppressed: bool


def create_campaign(
    session: Session,
    org_id: uuid.UUID,
    idempotency_key: str,
    spec: CampaignSpec,
    actor: str = "api",
) -> CreatedCampaign:
    """Insert unless the key was used; then report whether the earlier request matched."""
    inserted = session.execute(
        insert(Campaign)
        .values(
            id=uuid.uuid4(),
            org_id=org_id,
            name=spec.name,
            template=spec.template,
            filter=spec.filter,
            channel=spec.channel,
            idempotency_key=idempotency_key,
            status="pending",
            targeted=0,
        )
        .on_conflict_do_nothing(constraint="uq_campaigns_key")
        .returning(Campaign.id)
    ).scalar_one_or_none()
    if inserted is not None:
        record_audit(session, actor, "campaign.created", org_id=org_id, target=str(inserted))
        return CreatedCampaign(inserted, created=True, same_request=True)
    existing = find_campaign_by_key(session, idempotency_key)
    assert existing is not None
    return CreatedCampaign(existing.id, created=False, same_request=spec.same_as(existing))


def list_campaigns(session: Session, position: Position | None, limit: int) -> list[Campaign]:
    """Tenant session: newest first, after `position`."""
    query = select(Campaign)
    if position is not None:
        query = query.where(after(Campaign.created_at, Campaign.id, position, newest_first=True))
    order = (Campaign.created_at.desc(), Campaign.id.desc())
    return list(session.scalars(query.order_by(*order).limit(limit)))


def find_campaign_by_key(session: Session, idempotency_key: str) -> Campaign | None:
    query = select(Campaign).where(Campaign.idempotency_key == idempotency_key)
    return session.scalars(query).first()


def lock_pending_campaign(session: Session, campaign_id: uuid.UUID) -> Campaign | None:
    query = select(Campaign).where(Campaign.id == campaign_id).with_for_update()
    campaign = session.scalars(query).first()
    return campaign if campaign is not None and campaign.status == "pending" else None


def consent_after_every_optout() -> ColumnElement[bool]:
    """The lead's latest consent is newer than every opt-out from its number: the suppression
    in force, if any, and every opt-out ever recorded (the audit log keeps those a START
    lifted). A lead who consents again after a STOP is targeted, and still blocked until START.
    """
    # A consent cannot have reached us after the row was last written: a time claimed in the
    # future (an imported list's consent_at) counts as when it was stored.
    consent = func.least(Lead.last_consent_at, Lead.updated_at)
    stop = aliased(Suppression)  # the outer query joins Suppression itself
    stop_in_force = (
        exists()
        .where(
            stop.org_id == Lead.org_id,
            stop.recipient_bidx == Lead.phone_bidx,
            or_(consent.is_(None), stop.created_at >= consent),
        )
        .correlate(Lead)
    )
    target = literal("recipient:") + func.encode(Lead.phone_bidx, "hex")
    stop_on_record = (
        exists()
        .where(
            AuditEntry.org_id == Lead.org_id,
            AuditEntry.action == OPTOUT_ADDED,
            AuditEntry.target == target,
            or_(consent.is_(None), AuditEntry.created_at >= consent),
        )
        .correlate(Lead)
    )
    return and_(~stop_in_force, ~stop_on_record)


def campaign_targets(session: Session, campaign: Campaign) -> Iterator[CampaignTarget]:
    """Leads with consent and an address on the campaign's channel (SMS: a phone whose
    consent is newer than any STOP from it; email: an email address), matching the filter;
    flags suppressed ones."""
    email = campaign.channel == "email"
    address = Lead.email_bidx if email else Lead.phone_bidx
    consent = Lead.email_consent if email else Lead.sms_consent
    conditions: list[ColumnElement[bool]] = [consent.is_(True), address.is_not(None)]
    if not email:
        conditions.append(consent_after_every_optout())
    created_after = text_of(campaign.filter, "created_after")
    if created_after:
        conditions.append(Lead.created_at > datetime.fromisoformat(created_after))
    if campaign.filter.get("status"):
        conditions.append(Lead.status == campaign.filter["status"])
    query = (
        select(Lead, Suppression.id.is_not(None).label("suppressed"))
        .outerjoin(
            Suppression,
            and_(Suppression.org_id == Lead.org_id, Suppression.recipient_bidx == address),
        )
        .where(*conditions)
        .order_by(Lead.created_at, Lead.id)
        .execution_options(yield_per=500)
    )
    for lead, suppressed in session.execute(query).tuples():
        yield CampaignTarget(lead, bool(suppressed))


def reserve_send_slots(
    session: Session, sender: str, count: int, interval: float, now: datetime
) -> datetime:
    """Book `count` consecutive slots on a sender; returns the first. Maintenance scope.

    One atomic upsert, so concurrent campaigns on one number never share a slot."""
    span = timedelta(seconds=interval * count)
    start: datetime = session.execute(
        text(
            "INSERT INTO sender_pacing (sender, next_slot_at) VALUES (:sender, :now + :span) "
            "ON CONFLICT (sender) DO UPDATE SET next_slot_at = "
            "GREATEST(sender_pacing.next_slot_at, :now) + :span "
            "RETURNING next_slot_at - :span"
        ),
        {"sender": sender, "now": now, "span": span},
    ).scalar_one()
    return start


def campaign_view(session: Session, campaign: Campaign) -> CampaignView:
    states = count_by_state(session, campaign.id)
    counts = {
        name: sum(states.get(state, 0) for state in group) for name, group in COUNT_GROUPS.items()
    }
    done = campaign.status == "running" and counts["queued"] == counts["held"] == 0
    return {
        "id": str(campaign.id),
        "name": campaign.name,
        "channel": campaign.channel,
        "status": "done" if done else campaign.status,
        "created_at": campaign.created_at.isoformat(),
        "launched_at": campaign.launched_at.isoformat() if campaign.launched_at else None,
        "counts": {"targeted": campaign.targeted, **counts},
    }
