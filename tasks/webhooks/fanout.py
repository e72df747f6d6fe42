"""Domain events → one encrypted delivery row per subscribed endpoint, in the event's
transaction; the delivery ids are enqueued after COMMIT through the event's after_commit."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from models.cache import Cache
from models.tables import Lead
from models.webhooks import WebhookDelivery, WebhookEndpoint
from tasks.domain_events import DomainEvent, EventData
from tasks.webhooks.delivery import deliver_webhooks
from tasks.webhooks.payload import build_payload, encode_payload, encrypt_body, webhook_id


@dataclass(frozen=True)
class Subscriber:
    """What fan-out needs of an endpoint: where the row points and which lead fields it gets."""

    id: uuid.UUID
    shared_fields: tuple[str, ...]


# Endpoint lists per org and event type, read for every domain event (models/cache.py).
_SUBSCRIBERS: Cache[tuple[uuid.UUID, str], tuple[Subscriber, ...]] = Cache(("webhook_endpoints",))


def subscribed_endpoints(session: Session, event_type: str) -> tuple[Subscriber, ...]:
    query = select(WebhookEndpoint.id, WebhookEndpoint.shared_fields).where(
        WebhookEndpoint.enabled.is_(True), WebhookEndpoint.event_types.any_() == event_type
    )
    rows = session.execute(query.order_by(WebhookEndpoint.id)).all()
    return tuple(Subscriber(row.id, tuple(row.shared_fields)) for row in rows)


def _lead_uuid(data: EventData) -> uuid.UUID | None:
    lead_id = data.get("lead_id")
    try:
        return uuid.UUID(lead_id) if isinstance(lead_id, str) else None
    except ValueError:
        return None


def queue_webhook_deliveries(event: DomainEvent) -> None:
    """One pending delivery per enabled endpoint subscribed to the event's type."""
    endpoints = _SUBSCRIBERS.get(
        (event.org_id, event.type), lambda: subscribed_endpoints(event.session, event.type)
    )
    if not endpoints:
        return
    lead_id = _lead_uuid(event.data)
    lead = event.session.get(Lead, lead_id) if lead_id else None
    for endpoint in endpoints:
        body = encode_payload(build_payload(event, lead, endpoint.shared_fields))
        delivery_id = uuid.uuid4()
        event.session.add(
            WebhookDelivery(
                id=delivery_id,
                org_id=event.org_id,
                endpoint_id=endpoint.id,
                event_id=webhook_id(event.id),
                event_type=event.type,
                lead_id=lead.id if lead is not None else None,
                payload_ct=encrypt_body(event.cipher, body, delivery_id),
                state="pending",
                attempt_count=0,
                next_attempt_at=event.now,
                cycle_started_at=event.now,
            )
        )
        event.after_commit.add_to_batch(deliver_webhooks, str(event.org_id), str(delivery_id))
    event.session.flush()
