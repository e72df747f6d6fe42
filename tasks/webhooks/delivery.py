"""Deliveries: claim a due row, attempt it on the event loop, record the attempt, follow up.

The row is the truth: its state and `next_attempt_at` survive a lost Redis message, which only
delays the delivery until the sweeper (tasks.webhooks.operations) enqueues it again.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol, cast

import dramatiq
import redis
from sqlalchemy import Table, bindparam, func, insert, select, update
from sqlalchemy.orm import Session

from leadline.errors import CryptoError, KeyNotFoundError
from leadline.logging import get_logger
from leadline.metrics import WEBHOOK_ATTEMPTS
from leadline.settings import Settings
from models.crypto import OrgCipher
from models.webhook_endpoints import SecretColumns, get_endpoint, signing_keys
from models.webhooks import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from tasks.after_commit import AfterCommit
from tasks.context import TaskContext, get_context
from tasks.webhooks.http import WebhookClaim, attempt_delivery, get_dispatcher
from tasks.webhooks.lifecycle import disable_and_announce
from tasks.webhooks.payload import decrypt_body
from tasks.webhooks.policy import AttemptResult, after_failure
from tasks.webhooks.recorder import BatchRecorder
from workers.middleware.drain import register_drain
from workers.runtime import actor

log = get_logger(__name__)
# Longer waits are split: a message that arrives early re-queues itself for the remainder.
MAX_ENQUEUE_DELAY = timedelta(hours=1)


@dataclass(frozen=True)
class NotDue:
    next_attempt_at: datetime


# --------------------------------------------------------------------------- claiming


_DELIVERIES = cast(Table, WebhookDelivery.__table__)
_ENDPOINTS = cast(Table, WebhookEndpoint.__table__)
_ATTEMPTS = cast(Table, WebhookAttempt.__table__)
_CLAIMED_COLUMNS = (
    _DELIVERIES.c.id.label("delivery_id"),
    *(_DELIVERIES.c[name] for name in ("org_id", "payload_ct", "event_id")),
    *(_ENDPOINTS.c[name] for name in ("id", "url", "secret_ct", "previous_secret_ct")),
    _ENDPOINTS.c.previous_secret_expires_at,
)


class ClaimedRow(SecretColumns, Protocol):
    """A row of `_CLAIMED_COLUMNS` (its `id` is the endpoint's)."""

    delivery_id: uuid.UUID
    org_id: uuid.UUID
    payload_ct: bytes
    event_id: str
    url: str


def _claim_due(session: Session, delivery_id: uuid.UUID, now: datetime) -> ClaimedRow | None:
    """The common case in one statement: a due pending delivery of an enabled endpoint."""
    d, e = _DELIVERIES.c, _ENDPOINTS.c
    statement = (
        update(_DELIVERIES)
        .where(d.id == delivery_id, d.state == "pending", d.next_attempt_at <= now)
        .where(d.endpoint_id == e.id, e.enabled.is_(True))
        .values(state="delivering", claimed_at=now, updated_at=now)
        .returning(*_CLAIMED_COLUMNS)
    )
    return cast(ClaimedRow | None, session.execute(statement).first())


def _explain_unclaimable(session: Session, delivery_id: uuid.UUID, now: datetime) -> NotDue | None:
    """Why a delivery was not claimed: not due yet, its endpoint is disabled, or nothing to do."""
    query = select(WebhookDelivery).where(WebhookDelivery.id == delivery_id)
    delivery = session.scalars(query.with_for_update(skip_locked=True)).first()
    if delivery is None or delivery.state != "pending":
        return None
    if delivery.next_attempt_at > now:
        return NotDue(delivery.next_attempt_at)
    _settle(delivery, "cancelled", now, error="endpoint disabled")
    return None


def claim_delivery(
    session: Session, cipher: OrgCipher, delivery_id: uuid.UUID, now: datetime
) -> WebhookClaim | NotDue | None:
    """Move a due pending delivery to `delivering` and decrypt what the request needs."""
    row = _claim_due(session, delivery_id, now)
    if row is None:
        return _explain_unclaimable(session, delivery_id, now)
    return _claim_of(cipher, row, now)


def _claim_of(cipher: OrgCipher, row: ClaimedRow, now: datetime) -> WebhookClaim:
    return WebhookClaim(
        delivery_id=row.delivery_id,
        org_id=row.org_id,
        endpoint_id=row.id,
        url=row.url,
        msg_id=row.event_id,
        body=decrypt_body(cipher, row.payload_ct, row.delivery_id),
        keys=tuple(signing_keys(cipher, row, now)),
    )


def claim_deliveries(
    session: Session, cipher: OrgCipher, delivery_ids: list[uuid.UUID], now: datetime
) -> tuple[list[WebhookClaim], dict[uuid.UUID, NotDue]]:
    """claim_delivery for many rows in one statement: the claims, and the rows not due yet
    (the rest had nothing to do, or their endpoint is disabled and they are now cancelled)."""
    d, e = _DELIVERIES.c, _ENDPOINTS.c
    statement = (
        update(_DELIVERIES)
        .where(d.id.in_(delivery_ids), d.state == "pending", d.next_attempt_at <= now)
        .where(d.endpoint_id == e.id, e.enabled.is_(True))
        .values(state="delivering", claimed_at=now, updated_at=now)
        .returning(*_CLAIMED_COLUMNS)
    )
    rows = cast(list[ClaimedRow], session.execute(statement).all())
    claims = [_claim_of(cipher, row, now) for row in rows]
    claimed = {claim.delivery_id for claim in claims}
    not_due: dict[uuid.UUID, NotDue] = {}
    for delivery_id in delivery_ids:
        if delivery_id not in claimed:
            explained = _explain_unclaimable(session, delivery_id, now)
            if explained is not None:
                not_due[delivery_id] = explained
    return claims, not_due


def _settle(delivery: WebhookDelivery, state: str, now: datetime, error: str | None) -> None:
    delivery.state, delivery.updated_at, delivery.claimed_at = state, now, None
    if error is not None:
        delivery.last_error = error


# --------------------------------------------------------------------------- recording


def attempts_in_cycle(session: Session, delivery: WebhookDelivery) -> int:
    """The retry count comes from recorded attempts since the last resend/recover."""
    query = select(func.count()).where(
        WebhookAttempt.delivery_id == delivery.id,
        WebhookAttempt.started_at >= delivery.cycle_started_at,
    )
    return int(session.scalar(query) or 0)


def _log_attempt(session: Session, claim: WebhookClaim, result: AttemptResult) -> None:
    session.add(
        WebhookAttempt(
            org_id=claim.org_id,
            delivery_id=claim.delivery_id,
            endpoint_id=claim.endpoint_id,
            started_at=result.started_at,
            duration_ms=result.duration_ms,
            outcome=result.outcome,
            status_code=result.status,
            error_class=result.error_class,
            error_text=result.error_text,
        )
    )
    WEBHOOK_ATTEMPTS.labels(outcome=result.outcome).inc()


def _mark_endpoint_healthy(session: Session, endpoint_id: uuid.UUID) -> None:
    # Conditional, so a healthy endpoint's row is not locked by every successful delivery.
    session.execute(
        update(WebhookEndpoint)
        .where(WebhookEndpoint.id == endpoint_id, WebhookEndpoint.failing_since.is_not(None))
        .values(failing_since=None)
    )


def record_attempt(
    session: Session,
    cipher: OrgCipher,
    claim: WebhookClaim,
    result: AttemptResult,
    now: datetime,
    settings: Settings,
    after_commit: AfterCommit,
) -> timedelta | None:
    """Log the attempt and apply the delivery policy. Returns the delay before the next try."""
    _log_attempt(session, claim, result)
    delivery = session.get(WebhookDelivery, claim.delivery_id, with_for_update=True)
    if delivery is None or delivery.state != "delivering":
        return None
    delivery.attempt_count += 1
    delivery.last_status, delivery.last_error = result.status, result.error_text
    if result.delivered:
        _settle(delivery, "delivered", now, error=None)
        delivery.delivered_at = now
        _mark_endpoint_healthy(session, claim.endpoint_id)
        return None
    return _after_failure(session, cipher, delivery, result, now, settings, after_commit)


def _after_failure(
    session: Session,
    cipher: OrgCipher,
    delivery: WebhookDelivery,
    result: AttemptResult,
    now: datetime,
    settings: Settings,
    after_commit: AfterCommit,
) -> timedelta | None:
    endpoint = get_endpoint(session, delivery.endpoint_id, lock=True)
    if endpoint.failing_since is None:
        endpoint.failing_since = result.started_at
    decision = after_failure(
        result,
        attempts_in_cycle(session, delivery),
        endpoint.failing_since,
        settings.webhook_retry_delays,
        timedelta(hours=settings.leadline_webhook_disable_after_hours),
    )
    if decision.disable_reason is not None:
        disable_and_announce(
            session, cipher, endpoint, decision.disable_reason, after_commit, now, actor="system"
        )
    if not endpoint.enabled or decision.retry_in is None:
        _settle(delivery, "failed", now, error=None)
        return None
    _settle(delivery, "pending", now, error=None)
    delivery.next_attempt_at = now + decision.retry_in
    return decision.retry_in


# --------------------------------------------------------------------------- the actor


def enqueue_later(org_id: uuid.UUID, delivery_id: uuid.UUID, delay: timedelta) -> bool:
    """Send after COMMIT with a broker delay; if Redis is down the sweeper catches up."""
    wait = min(max(delay, timedelta(0)), MAX_ENQUEUE_DELAY)
    try:
        deliver_webhook.send_with_options(
            args=(str(org_id), str(delivery_id)), delay=int(wait.total_seconds() * 1000)
        )
    except (redis.RedisError, OSError, dramatiq.errors.BrokerError) as exc:
        log.warning("webhook retry left to the sweeper", error=type(exc).__name__)
        return False
    return True


def finish_attempt(context: TaskContext, claim: WebhookClaim, result: AttemptResult) -> None:
    """Record one attempt in its own transaction and schedule the next try if any."""
    after_commit = AfterCommit()
    with context.db.tenant(claim.org_id) as session:
        cipher = context.keys.cipher(session, claim.org_id)
        delay = record_attempt(
            session, cipher, claim, result, context.clock(), context.settings, after_commit
        )
    after_commit.flush()
    if delay is not None:
        enqueue_later(claim.org_id, claim.delivery_id, delay)


def _attempt_row(claim: WebhookClaim, result: AttemptResult) -> dict[str, object]:
    return {
        "id": uuid.uuid4(),
        "org_id": claim.org_id,
        "delivery_id": claim.delivery_id,
        "endpoint_id": claim.endpoint_id,
        "started_at": result.started_at,
        "duration_ms": result.duration_ms,
        "outcome": result.outcome,
        "status_code": result.status,
        "error_class": None,
        "error_text": None,
    }


_MARK_DELIVERED = (
    update(_DELIVERIES)
    .where(_DELIVERIES.c.id == bindparam("b_id"), _DELIVERIES.c.state == "delivering")
    .values(
        state="delivered",
        delivered_at=bindparam("b_now"),
        updated_at=bindparam("b_now"),
        claimed_at=None,
        last_status=bindparam("b_status"),
        last_error=None,
        attempt_count=_DELIVERIES.c.attempt_count + 1,
    )
)


def record_delivered(
    session: Session, done: list[tuple[WebhookClaim, AttemptResult]], now: datetime
) -> None:
    """Successful attempts of one organisation in three statements, however many there are."""
    connection = session.connection()
    connection.execute(insert(_ATTEMPTS), [_attempt_row(c, r) for c, r in done])
    marks = [{"b_id": c.delivery_id, "b_status": r.status, "b_now": now} for c, r in done]
    connection.execute(_MARK_DELIVERED, marks)
    for endpoint_id in {claim.endpoint_id for claim, _ in done}:
        _mark_endpoint_healthy(session, endpoint_id)
    WEBHOOK_ATTEMPTS.labels(outcome="delivered").inc(len(done))


Recorded = tuple[TaskContext, WebhookClaim, AttemptResult]


def _record_group(context: TaskContext, org_id: uuid.UUID, items: list[Recorded]) -> None:
    delivered = [(claim, result) for _, claim, result in items if result.delivered]
    if delivered:
        with context.db.tenant(org_id) as session:
            record_delivered(session, delivered, context.clock())
    for _, claim, result in items:
        if not result.delivered:
            finish_attempt(context, claim, result)


def record_results(items: list[Recorded]) -> None:
    """The recorder's batch: one transaction per organisation for the successes."""
    groups: dict[tuple[int, uuid.UUID], list[Recorded]] = defaultdict(list)
    for item in items:
        groups[(id(item[0]), item[1].org_id)].append(item)
    for (_, org_id), group in groups.items():
        try:
            _record_group(group[0][0], org_id, group)
        except Exception as exc:  # others still get written; the sweeper's lease covers these
            log.error("webhook results not recorded", error=type(exc).__name__)


_recorder: BatchRecorder[Recorded] = BatchRecorder(record_results)


async def run_claim(context: TaskContext, claim: WebhookClaim) -> None:
    """On the event loop: the request; the bookkeeping is queued for the recorder thread."""
    client = get_dispatcher(context.settings).client(context.settings)
    timeout = context.settings.leadline_webhook_timeout_seconds
    result = await attempt_delivery(client, claim, context.clock, timeout)
    _recorder.put((context, claim, result))


@register_drain
def drain_deliveries() -> None:
    """A stopping worker lets its requests finish and their results be written, then closes
    its HTTP clients."""
    context = get_context()
    dispatcher = get_dispatcher(context.settings)
    if not dispatcher.wait_idle(context.settings.leadline_webhook_timeout_seconds + 5):
        cancelled = dispatcher.cancel_all()
        dispatcher.wait_idle(5)
        log.warning(
            "webhook requests cancelled at shutdown; the sweeper retries them", count=cancelled
        )
    _recorder.wait_idle(30)
    dispatcher.close_clients(5)


def mark_undeliverable(context: TaskContext, org_id: uuid.UUID, delivery_id: uuid.UUID) -> None:
    """A payload or secret that no longer decrypts (keys shredded) will never go out."""
    with context.db.tenant(org_id) as session:
        delivery = session.get(WebhookDelivery, delivery_id, with_for_update=True)
        if delivery is not None and delivery.state == "pending":
            _settle(delivery, "failed", context.clock(), error="payload cannot be decrypted")


def open_claim(
    context: TaskContext, org_id: uuid.UUID, delivery_id: uuid.UUID
) -> WebhookClaim | NotDue | None:
    try:
        with context.db.tenant(org_id) as session:
            cipher = context.keys.cipher(session, org_id)
            return claim_delivery(session, cipher, delivery_id, context.clock())
    except (KeyNotFoundError, CryptoError):
        mark_undeliverable(context, org_id, delivery_id)
        raise


@actor(queue_name="webhooks", max_retries=5, throws=(KeyNotFoundError, CryptoError))
def deliver_webhook(org_id: str, delivery_id: str) -> None:
    """WebhookClaim the delivery and hand its request to the event loop; returns without waiting."""
    context = get_context()
    org, delivery = uuid.UUID(org_id), uuid.UUID(delivery_id)
    claim = open_claim(context, org, delivery)
    if isinstance(claim, NotDue):
        enqueue_later(org, delivery, claim.next_attempt_at - context.clock())
    elif claim is not None:
        get_dispatcher(context.settings).submit(run_claim(context, claim))


def open_claims(
    context: TaskContext, org_id: uuid.UUID, delivery_ids: list[uuid.UUID]
) -> tuple[list[WebhookClaim], dict[uuid.UUID, NotDue]]:
    try:
        with context.db.tenant(org_id) as session:
            cipher = context.keys.cipher(session, org_id)
            return claim_deliveries(session, cipher, delivery_ids, context.clock())
    except (KeyNotFoundError, CryptoError):
        for delivery_id in delivery_ids:
            mark_undeliverable(context, org_id, delivery_id)
        raise


@actor(queue_name="webhooks", max_retries=5, throws=(KeyNotFoundError, CryptoError))
def deliver_webhooks(org_id: str, delivery_ids: list[str]) -> None:
    """deliver_webhook for deliveries queued together (one fan-out): one claim statement,
    then every request handed to the event loop; returns without waiting."""
    context = get_context()
    org = uuid.UUID(org_id)
    claims, not_due = open_claims(context, org, [uuid.UUID(value) for value in delivery_ids])
    for delivery_id, later in not_due.items():
        enqueue_later(org, delivery_id, later.next_attempt_at - context.clock())
    dispatcher = get_dispatcher(context.settings)
    for claim in claims:
        dispatcher.submit(run_claim(context, claim))
