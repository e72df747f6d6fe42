"""Stripe events → the org's billing state, applied only when newer than the last one applied.

`customer.subscription.deleted` cancels the org and sets its deletion 30 days after the
cancellation; the scheduler's retention job deletes it then. A later subscription (newer
`created`) lifts the cancellation.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from leadline.jsondata import JsonObject, as_object
from models.audit import record_audit
from models.billing import OrgBilling
from models.tables import Organization
from tasks.context import get_context
from tasks.inbound_events import InboundContext

DEFAULT_DELETION_GRACE = timedelta(days=30)
SUBSCRIPTION_CHANGES = {"customer.subscription.created", "customer.subscription.updated"}
CANCELLATION = "customer.subscription.deleted"
PAYMENT_FAILED = "invoice.payment_failed"
HANDLED = {*SUBSCRIPTION_CHANGES, CANCELLATION, PAYMENT_FAILED}
LIVE_STATUSES = {"active", "trialing"}


def timestamp(value: object) -> datetime | None:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return datetime.fromtimestamp(value, tz=UTC)
    return None


def event_object(event: JsonObject) -> JsonObject:
    return as_object(as_object(event.get("data")).get("object"))


def apply_stripe_event(
    session: Session,
    org_id: uuid.UUID,
    event: JsonObject,
    now: datetime,
    grace: timedelta = DEFAULT_DELETION_GRACE,
) -> bool:
    """Apply one verified event to the org's billing row. False when it changed nothing."""
    created = timestamp(event.get("created"))
    if event.get("type") not in HANDLED or created is None:
        return False
    billing = session.scalars(
        select(OrgBilling).where(OrgBilling.org_id == org_id).with_for_update()
    ).first()
    org = session.get(Organization, org_id, with_for_update=True)
    if billing is None or org is None:
        return False
    if billing.last_event_created is not None and created <= billing.last_event_created:
        return False
    change_state(billing, org, str(event["type"]), event_object(event), created, grace)
    billing.last_event_created, billing.last_event_id = created, str(event.get("id"))
    billing.updated_at = now
    record_audit(
        session,
        "stripe",
        "billing.event_applied",
        org_id=org_id,
        target=billing.last_event_id,
        details={"type": event["type"], "status": billing.status},
    )
    return True


def change_state(
    billing: OrgBilling,
    org: Organization,
    kind: str,
    obj: JsonObject,
    created: datetime,
    grace: timedelta,
) -> None:
    if kind == CANCELLATION:
        cancelled_at = timestamp(obj.get("ended_at")) or timestamp(obj.get("canceled_at"))
        cancel(billing, org, cancelled_at or created, grace)
    elif kind == PAYMENT_FAILED:
        billing.status = "past_due"
    else:
        status = obj.get("status")
        billing.status = str(status)[:20] if isinstance(status, str) else billing.status
        if isinstance(subscription_id := obj.get("id"), str):
            billing.subscription_id = subscription_id
        if billing.status in LIVE_STATUSES and org.status == "cancelled":
            reactivate(billing, org)


def cancel(
    billing: OrgBilling, org: Organization, cancelled_at: datetime, grace: timedelta
) -> None:
    billing.status = "cancelled"
    billing.cancelled_at = cancelled_at
    billing.deletion_due_at = org.deletion_due_at = cancelled_at + grace
    org.status = "cancelled"


def reactivate(billing: OrgBilling, org: Organization) -> None:
    billing.cancelled_at = billing.deletion_due_at = org.deletion_due_at = None
    org.status = "active"


def handle_stripe_event(ctx: InboundContext) -> None:
    grace = timedelta(days=get_context().settings.leadline_deletion_grace_days)
    apply_stripe_event(ctx.session, ctx.org_id, ctx.payload, ctx.now, grace)
