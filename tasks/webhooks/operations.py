"""Operator and scheduler entry points: the sweeper, resend/recover, attempt logs, attention."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy import Row, and_, or_, select, update
from sqlalchemy.orm import Session

from leadline.errors import LeadlineError, NotFoundError
from leadline.jsondata import JsonObject
from leadline.logging import get_logger
from leadline.progress import ProgressCallback
from models.audit import record_audit
from models.pagination import Position, after
from models.webhook_endpoints import get_endpoint
from models.webhooks import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from tasks.after_commit import AfterCommit, enqueue_or_defer
from tasks.context import TaskContext
from tasks.webhooks.delivery import deliver_webhook

log = get_logger(__name__)
SWEEP_BATCH = 500
SWEEP_MAX_BATCHES = 20
MIN_LEASE = timedelta(minutes=2)


class DeliveryBusyError(LeadlineError):
    """The delivery is being attempted right now."""


class EndpointDisabledError(LeadlineError):
    """Deliveries cannot be re-queued to a disabled endpoint."""


# --------------------------------------------------------------------------- sweeper


def _lease(context: TaskContext) -> timedelta:
    return max(MIN_LEASE, timedelta(seconds=4 * context.settings.leadline_webhook_timeout_seconds))


def release_stale_claims(context: TaskContext, now: datetime) -> int:
    """Rows left `delivering` by a worker that died mid-request go back to pending."""
    stale = (
        select(WebhookDelivery.id)
        .where(
            WebhookDelivery.state == "delivering",
            WebhookDelivery.claimed_at < now - _lease(context),
        )
        .limit(SWEEP_BATCH)
        .with_for_update(skip_locked=True)
    )
    with context.db.maintenance() as session:
        result = session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id.in_(stale.scalar_subquery()))
            .values(state="pending", claimed_at=None, next_attempt_at=now, updated_at=now)
        )
        return int(result.rowcount)  # type: ignore[attr-defined]


def _due_batch(
    session: Session, cutoff: datetime, after: tuple[datetime, uuid.UUID] | None
) -> list[Row[uuid.UUID, uuid.UUID, datetime]]:
    query = select(
        WebhookDelivery.id, WebhookDelivery.org_id, WebhookDelivery.next_attempt_at
    ).where(WebhookDelivery.state == "pending", WebhookDelivery.next_attempt_at <= cutoff)
    if after is not None:
        due_at, last_id = after
        query = query.where(
            or_(
                WebhookDelivery.next_attempt_at > due_at,
                and_(WebhookDelivery.next_attempt_at == due_at, WebhookDelivery.id > last_id),
            )
        )
    order = (WebhookDelivery.next_attempt_at, WebhookDelivery.id)
    return list(session.execute(query.order_by(*order).limit(SWEEP_BATCH)).all())


def sweep_due_deliveries(context: TaskContext) -> int:
    """Enqueue deliveries that are due (past a grace period) in bounded batches.

    Messages normally arrive on their own; this restores the ones Redis lost. A duplicate
    message is harmless: only one claim of a pending row succeeds.
    """
    now = context.clock()
    release_stale_claims(context, now)
    cutoff = now - timedelta(seconds=context.settings.leadline_webhook_sweep_grace_seconds)
    enqueued, after = 0, None
    for _ in range(SWEEP_MAX_BATCHES):
        with context.db.maintenance() as session:
            rows = _due_batch(session, cutoff, after)
        for row in rows:
            enqueued += enqueue_or_defer(deliver_webhook, str(row.org_id), str(row.id))
        if len(rows) < SWEEP_BATCH:
            break
        after = (rows[-1].next_attempt_at, rows[-1].id)
    if enqueued:
        log.info("webhook deliveries re-enqueued", count=enqueued)
    return enqueued


# --------------------------------------------------------------------------- attention


def disabled_endpoints(session: Session) -> list[dict[str, object]]:
    query = (
        select(WebhookEndpoint)
        .where(WebhookEndpoint.enabled.is_(False))
        .order_by(WebhookEndpoint.disabled_at.desc())
    )
    return [
        {
            "id": str(endpoint.id),
            "org_id": str(endpoint.org_id),
            "reason": endpoint.disabled_reason,
            "since": endpoint.disabled_at,
        }
        for endpoint in session.scalars(query).all()
    ]


# --------------------------------------------------------------------------- replay


def delivery_org(session: Session, delivery_id: uuid.UUID) -> uuid.UUID:
    """The organisation owning a delivery. Maintenance scope (the CLI only has the id)."""
    org_id = session.scalar(select(WebhookDelivery.org_id).where(WebhookDelivery.id == delivery_id))
    if org_id is None:
        raise NotFoundError(
            "webhook delivery not found (`leadline endpoint attempts ENDPOINT` shows them)"
        )
    return org_id


def _restart(delivery: WebhookDelivery, now: datetime) -> None:
    delivery.state, delivery.next_attempt_at, delivery.cycle_started_at = "pending", now, now
    delivery.claimed_at, delivery.last_error, delivery.updated_at = None, None, now


def resend_delivery(
    session: Session,
    delivery_id: uuid.UUID,
    now: datetime,
    after_commit: AfterCommit,
    *,
    actor: str = "cli",
) -> WebhookDelivery:
    """Send one delivery again (same webhook-id), with a fresh retry schedule."""
    delivery = session.get(WebhookDelivery, delivery_id, with_for_update=True)
    if delivery is None:
        raise NotFoundError(
            "webhook delivery not found (`leadline endpoint attempts ENDPOINT` shows them)"
        )
    if delivery.state == "delivering":
        raise DeliveryBusyError("the delivery is being attempted right now; try again shortly")
    if not get_endpoint(session, delivery.endpoint_id).enabled:
        raise EndpointDisabledError("the endpoint is disabled; enable it first")
    previous = delivery.state
    _restart(delivery, now)
    after_commit.add(deliver_webhook, str(delivery.org_id), str(delivery.id))
    record_audit(
        session,
        actor,
        "webhook.resend",
        org_id=delivery.org_id,
        target=str(delivery.id),
        details={"previous_state": previous},
    )
    return delivery


def recover_deliveries(
    session: Session,
    endpoint_id: uuid.UUID,
    since: datetime,
    until: datetime,
    now: datetime,
    after_commit: AfterCommit,
    *,
    actor: str = "cli",
    on_progress: ProgressCallback | None = None,
) -> int:
    """Re-queue the endpoint's failed or cancelled deliveries created in [since, until).

    `on_progress(done, total)` as rows are reset; the messages leave at `after_commit.flush`."""
    endpoint = get_endpoint(session, endpoint_id)
    if not endpoint.enabled:
        raise EndpointDisabledError("the endpoint is disabled; enable it first")
    query = select(WebhookDelivery).where(
        WebhookDelivery.endpoint_id == endpoint_id,
        WebhookDelivery.state.in_(("failed", "cancelled")),
        WebhookDelivery.created_at >= since,
        WebhookDelivery.created_at < until,
    )
    deliveries = session.scalars(query.with_for_update()).all()
    for done, delivery in enumerate(deliveries, start=1):
        _restart(delivery, now)
        after_commit.add(deliver_webhook, str(delivery.org_id), str(delivery.id))
        if on_progress:
            on_progress(done, len(deliveries))
    record_audit(
        session,
        actor,
        "webhook.recover",
        org_id=endpoint.org_id,
        target=str(endpoint_id),
        details={
            "requeued": len(deliveries),
            "since": since.isoformat(),
            "until": until.isoformat(),
        },
    )
    return len(deliveries)


def list_deliveries(
    session: Session, endpoint_id: uuid.UUID, position: Position | None, limit: int
) -> list[WebhookDelivery]:
    """The endpoint's deliveries, newest first, after `position` (NotFoundError: no endpoint)."""
    get_endpoint(session, endpoint_id)
    query = select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint_id)
    if position is not None:
        query = query.where(
            after(WebhookDelivery.created_at, WebhookDelivery.id, position, newest_first=True)
        )
    order = (WebhookDelivery.created_at.desc(), WebhookDelivery.id.desc())
    return list(session.scalars(query.order_by(*order).limit(limit)))


def delivery_attempts(session: Session, delivery_id: uuid.UUID) -> list[WebhookAttempt]:
    """Every attempt of one delivery, oldest first (NotFoundError: no such delivery)."""
    if session.get(WebhookDelivery, delivery_id) is None:
        raise NotFoundError("webhook delivery not found")
    query = select(WebhookAttempt).where(WebhookAttempt.delivery_id == delivery_id)
    return list(session.scalars(query.order_by(WebhookAttempt.started_at, WebhookAttempt.id)))


def list_attempts(session: Session, endpoint_id: uuid.UUID, limit: int) -> list[JsonObject]:
    """Newest attempts first; status or error class, never a response body."""
    get_endpoint(session, endpoint_id)
    query = (
        select(WebhookAttempt, WebhookDelivery.event_id, WebhookDelivery.event_type)
        .join(WebhookDelivery, WebhookDelivery.id == WebhookAttempt.delivery_id)
        .where(WebhookAttempt.endpoint_id == endpoint_id)
        .order_by(WebhookAttempt.started_at.desc())
        .limit(limit)
    )
    return [
        {
            "id": str(attempt.id),
            "delivery_id": str(attempt.delivery_id),
            "webhook_id": event_id,
            "event_type": event_type,
            "started_at": attempt.started_at,
            "duration_ms": attempt.duration_ms,
            "outcome": attempt.outcome,
            "status_code": attempt.status_code,
            "error_class": attempt.error_class,
            "error_text": attempt.error_text,
        }
        for attempt, event_id, event_type in session.execute(query).all()
    ]
