"""Disabling an endpoint: by an operator, after a 410, or after failing for days."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import update
from sqlalchemy.orm import Session

from leadline.logging import get_logger
from models.audit import record_audit
from models.crypto import OrgCipher
from models.webhook_endpoints import get_endpoint, mark_disabled
from models.webhooks import EventType, WebhookDelivery, WebhookEndpoint
from tasks.after_commit import AfterCommit
from tasks.domain_events import DomainEvent, publish

log = get_logger(__name__)


def cancel_pending(session: Session, endpoint_id: uuid.UUID, now: datetime) -> int:
    """Pending deliveries of a disabled endpoint stop; `webhook recover` can bring them back."""
    result = session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.endpoint_id == endpoint_id, WebhookDelivery.state == "pending")
        .values(state="cancelled", last_error="endpoint disabled", updated_at=now)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def disable_and_announce(
    session: Session,
    cipher: OrgCipher,
    endpoint: WebhookEndpoint,
    reason: str,
    after_commit: AfterCommit,
    now: datetime,
    *,
    actor: str,
) -> bool:
    """Disable, cancel its pending deliveries, audit, and publish `endpoint.disabled` once."""
    if not mark_disabled(endpoint, reason, now):
        return False
    cancelled = cancel_pending(session, endpoint.id, now)
    record_audit(
        session,
        actor,
        "endpoint.disabled",
        org_id=endpoint.org_id,
        target=str(endpoint.id),
        details={"reason": endpoint.disabled_reason, "cancelled_deliveries": cancelled},
    )
    log.warning("webhook endpoint disabled", endpoint_id=str(endpoint.id), reason=reason)
    data = {"endpoint_id": str(endpoint.id), "reason": endpoint.disabled_reason}
    publish(DomainEvent(session, cipher, EventType.ENDPOINT_DISABLED, data, after_commit, now))
    return True


def disable_endpoint_by_id(
    session: Session,
    cipher: OrgCipher,
    endpoint_id: uuid.UUID,
    reason: str,
    after_commit: AfterCommit,
    now: datetime,
    *,
    actor: str = "cli",
) -> WebhookEndpoint:
    endpoint = get_endpoint(session, endpoint_id, lock=True)
    disable_and_announce(session, cipher, endpoint, reason, after_commit, now, actor=actor)
    return endpoint
