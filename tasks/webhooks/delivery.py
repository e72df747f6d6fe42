"""Deliveries: claim a due row, attempt it on the event loop, record the attempt, follow up.

The row is the truth: its state and `next_attempt_at` survive a lost Redis message, which only
delays the delivery until the sweeper (tasks.webhooks.operations) enqueues it again.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import dramatiq
import redis
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from leadline.errors import CryptoError, KeyNotFoundError
from leadline.logging import get_logger
from leadline.metrics import WEBHOOK_ATTEMPTS
from leadline.settings import Settings
from models.crypto import OrgCipher
from models.endpoints import get_endpoint, signing_keys
from models.webhooks import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from tasks.context import TaskContext, get_context
from tasks.outbox import Outbox
from tasks.webhooks.http import Claim, attempt_delivery, get_dispatcher
from tasks.webhooks.lifecycle import disable_and_announce
from tasks.webhooks.payload import decrypt_body
from tasks.webhooks.policy import AttemptResult, next_retry_delay
from workers.runtime import actor

log = get_logger(__name__)
# Longer waits are split: a message that arrives early re-queues itself for the remainder.
MAX_ENQUEUE_DELAY = timedelta(hours=1)
GONE_REASON = "receiver answered 410 Gone"


@dataclass(frozen=True)
class NotDue:
    next_attempt_at: datetime


# --------------------------------------------------------------------------- claiming


def claim_delivery(
    session: Session, cipher: OrgCipher, delivery_id: uuid.UUID, now: datetime
) -> Claim | NotDue | None:
    """Move a due pending delivery to `delivering` and decrypt what the request needs."""
    query = select(WebhookDelivery).where(WebhookDelivery.id == delivery_id)
    delivery = session.scalars(query.with_for_update(skip_locked=True)).first()
    if delivery is None or delivery.state != "pending":
        return None
    if delivery.next_attempt_at > now:
        return NotDue(delivery.next_attempt_at)
    endpoint = session.get(WebhookEndpoint, delivery.endpoint_id)
    if endpoint is None or not endpoint.enabled:
        _settle(delivery, "cancelled", now, error="endpoint disabled")
        return None
    delivery.state, delivery.claimed_at, delivery.updated_at = "delivering", now, now
    return Claim(
        delivery_id=delivery.id,
        org_id=delivery.org_id,
        endpoint_id=endpoint.id,
        url=endpoint.url,
        msg_id=delivery.event_id,
        body=decrypt_body(cipher, delivery),
        keys=tuple(signing_keys(cipher, endpoint, now)),
    )


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


def _log_attempt(session: Session, claim: Claim, result: AttemptResult) -> None:
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


def _failing_too_long(endpoint: WebhookEndpoint, result: AttemptResult, settings: Settings) -> bool:
    if endpoint.failing_since is None:
        endpoint.failing_since = result.started_at
    limit = timedelta(hours=settings.leadline_webhook_disable_after_hours)
    return result.started_at - endpoint.failing_since >= limit


def record_attempt(
    session: Session,
    cipher: OrgCipher,
    claim: Claim,
    result: AttemptResult,
    now: datetime,
    settings: Settings,
    outbox: Outbox,
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
    return _after_failure(session, cipher, delivery, result, now, settings, outbox)


def _after_failure(
    session: Session,
    cipher: OrgCipher,
    delivery: WebhookDelivery,
    result: AttemptResult,
    now: datetime,
    settings: Settings,
    outbox: Outbox,
) -> timedelta | None:
    endpoint = get_endpoint(session, delivery.endpoint_id, lock=True)
    reason = None
    if result.outcome == "gone":
        reason = GONE_REASON
    elif _failing_too_long(endpoint, result, settings):
        hours = settings.leadline_webhook_disable_after_hours
        reason = f"failing for {hours:g} hours"
    if reason is not None:
        disable_and_announce(session, cipher, endpoint, reason, outbox, now, actor="system")
    if not endpoint.enabled:
        _settle(delivery, "failed", now, error=None)
        return None
    delay = next_retry_delay(
        result, attempts_in_cycle(session, delivery), settings.webhook_retry_delays
    )
    if delay is None:
        _settle(delivery, "failed", now, error=None)
        return None
    _settle(delivery, "pending", now, error=None)
    delivery.next_attempt_at = now + delay
    return delay


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


def finish_attempt(context: TaskContext, claim: Claim, result: AttemptResult) -> None:
    outbox = Outbox()
    with context.db.tenant(claim.org_id) as session:
        cipher = context.keys.cipher(session, claim.org_id)
        delay = record_attempt(
            session, cipher, claim, result, context.clock(), context.settings, outbox
        )
    outbox.flush()
    if delay is not None:
        enqueue_later(claim.org_id, claim.delivery_id, delay)


async def run_claim(context: TaskContext, claim: Claim) -> None:
    """On the event loop: the request, then the bookkeeping on the recorder threads."""
    dispatcher = get_dispatcher(context.settings)
    client = dispatcher.client(context.settings)
    timeout = context.settings.leadline_webhook_timeout_seconds
    result = await attempt_delivery(client, claim, context.clock, timeout)
    await dispatcher.in_recorder(finish_attempt, context, claim, result)


def mark_undeliverable(context: TaskContext, org_id: uuid.UUID, delivery_id: uuid.UUID) -> None:
    """A payload or secret that no longer decrypts (keys shredded) will never go out."""
    with context.db.tenant(org_id) as session:
        delivery = session.get(WebhookDelivery, delivery_id, with_for_update=True)
        if delivery is not None and delivery.state == "pending":
            _settle(delivery, "failed", context.clock(), error="payload cannot be decrypted")


def open_claim(
    context: TaskContext, org_id: uuid.UUID, delivery_id: uuid.UUID
) -> Claim | NotDue | None:
    try:
        with context.db.tenant(org_id) as session:
            cipher = context.keys.cipher(session, org_id)
            return claim_delivery(session, cipher, delivery_id, context.clock())
    except (KeyNotFoundError, CryptoError):
        mark_undeliverable(context, org_id, delivery_id)
        raise


@actor(queue_name="webhooks", max_retries=5, throws=(KeyNotFoundError, CryptoError))
def deliver_webhook(org_id: str, delivery_id: str) -> None:
    """Claim the delivery and hand its request to the event loop; returns without waiting."""
    context = get_context()
    org, delivery = uuid.UUID(org_id), uuid.UUID(delivery_id)
    claim = open_claim(context, org, delivery)
    if isinstance(claim, NotDue):
        enqueue_later(org, delivery, claim.next_attempt_at - context.clock())
    elif claim is not None:
        get_dispatcher(context.settings).submit(run_claim(context, claim))
