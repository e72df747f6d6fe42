"""Processing inbound events: decrypt, route by source, mark processed; fan-out after commit."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from leadline.errors import CryptoError, KeyNotFoundError, LeadlineError
from leadline.logging import get_logger, mark_sensitive
from models.crypto import OrgCipher
from models.leads import LeadFields, upsert_lead
from models.tables import InboundEvent, Lead
from tasks.after_commit import AfterCommit
from tasks.context import get_context
from tasks.registry import (
    EVENT_HANDLERS,
    DomainEvent,
    EventContext,
    LeadChange,
    handles,
    notify_lead_change,
    publish,
)
from workers.runtime import actor

log = get_logger(__name__)
TABLE = "inbound_events"


class UnknownEventSource(LeadlineError):
    """No handler is registered for the event's source."""


def encrypt_payload(cipher: OrgCipher, event_id: uuid.UUID, payload: dict[str, Any]) -> bytes:
    return cipher.encrypt(json.dumps(payload).encode(), TABLE, "payload_ct", event_id)


def decrypt_payload(cipher: OrgCipher, event: InboundEvent) -> dict[str, Any]:
    if event.payload_ct is None:
        return {}
    data: dict[str, Any] = json.loads(
        cipher.decrypt(event.payload_ct, TABLE, "payload_ct", event.id)
    )
    return data


def process_inbound_event(
    session: Session,
    cipher: OrgCipher,
    event_id: uuid.UUID,
    after_commit: AfterCommit,
    now: datetime,
) -> bool:
    """Handle one pending event exactly once. Returns False when there was nothing to do."""
    query = (
        select(InboundEvent).where(InboundEvent.id == event_id).with_for_update(skip_locked=True)
    )
    event = session.scalars(query).first()
    if event is None or event.status != "pending":
        return False
    handler = EVENT_HANDLERS.get(event.source)
    if handler is None:
        raise UnknownEventSource(f"no handler for source {event.source!r}")
    handler(EventContext(session, cipher, event, decrypt_payload(cipher, event), after_commit, now))
    event.status = "processed"
    event.processed_at = now
    return True


@handles("api")
def handle_api_lead(ctx: EventContext) -> None:
    data = ctx.payload
    mark_sensitive(data.get("name"), data.get("phone"), data.get("email"))
    consent = data.get("consent") or {}
    fields = LeadFields(
        name=data.get("name"),
        phone=data.get("phone"),
        email=data.get("email"),
        message=data.get("message"),
        source=data.get("source") or "api",
        sms_consent=bool(consent.get("sms")),
        consent_text=consent.get("text"),
        consent_at=datetime.fromisoformat(data["received_at"]),
    )
    result = upsert_lead(ctx.session, ctx.cipher, fields)
    ctx.event.processed_lead_id = result.lead.id  # GET /v1/events/{id}
    announce_lead(ctx, result.lead, result.created, fields.message)


def announce_lead(ctx: EventContext, lead: Lead, created: bool, message: str | None) -> None:
    """Alerts (lead change) and webhooks (domain event) for a new or updated lead."""
    notify_lead_change(
        LeadChange(ctx.session, ctx.cipher, lead, created, message, ctx.after_commit, ctx.now)
    )
    event_type = "lead.created" if created else "lead.updated"
    data = {"lead_id": str(lead.id), "source": lead.source, "inbound_event_id": str(ctx.event.id)}
    publish(DomainEvent(ctx.session, ctx.cipher, event_type, data, ctx.after_commit, ctx.now))


def mark_event_failed(org_id: uuid.UUID, event_id: uuid.UUID, reason: str) -> None:
    context = get_context()
    with context.db.tenant(org_id) as session:
        event = session.get(InboundEvent, event_id)
        if event is not None and event.status == "pending":
            event.status = "failed"
            event.error = reason[:200]


@actor(queue_name="events", throws=(KeyNotFoundError, CryptoError, UnknownEventSource))
def process_event(org_id: str, event_id: str) -> None:
    context = get_context()
    org, event = uuid.UUID(org_id), uuid.UUID(event_id)
    after_commit = AfterCommit()
    try:
        with context.db.tenant(org) as session:
            cipher = context.keys.cipher(session, org)
            handled = process_inbound_event(session, cipher, event, after_commit, context.clock())
    except (KeyNotFoundError, CryptoError, UnknownEventSource) as exc:
        log.error("inbound event cannot be processed", event_id=event_id, error=type(exc).__name__)
        mark_event_failed(org, event, type(exc).__name__)
        raise
    after_commit.flush()
    log.info("inbound event done", event_id=event_id, handled=handled)
