"""Processing stored inbound events: decrypt, hand to the handler of their source (the table
in tasks/wiring.py), mark processed, all in one transaction; what the handler queued is
enqueued after COMMIT."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from leadline.errors import CryptoError, KeyNotFoundError, LeadlineError
from leadline.jsondata import JsonObject, as_object
from leadline.logging import get_logger
from models.crypto import OrgCipher
from models.tables import InboundEvent, InboundEventStatus
from tasks.after_commit import AfterCommit
from tasks.context import get_context
from workers.runtime import actor

log = get_logger(__name__)
TABLE = "inbound_events"


class UnknownEventSource(LeadlineError):
    """No handler is registered for the event's source."""


def mark_optout_recorded(session: Session, event_id: uuid.UUID) -> None:
    """The intake recorded this event's opt-out with it: the worker must not apply it again
    (a START may have lifted it since)."""
    session.execute(
        update(InboundEvent)
        .where(InboundEvent.id == event_id)
        .values(optout_recorded_at=func.now())
    )


@dataclass
class InboundContext:
    """Everything a source's handler may use while processing one inbound event."""

    session: Session
    cipher: OrgCipher
    event: InboundEvent
    payload: JsonObject
    after_commit: AfterCommit
    now: datetime

    @property
    def org_id(self) -> uuid.UUID:
        return self.cipher.org_id


InboundHandler = Callable[[InboundContext], None]


def encrypt_payload(cipher: OrgCipher, event_id: uuid.UUID, payload: JsonObject) -> bytes:
    return cipher.encrypt(json.dumps(payload).encode(), TABLE, "payload_ct", event_id)


def decrypt_payload(cipher: OrgCipher, event: InboundEvent) -> JsonObject:
    if event.payload_ct is None:
        return {}
    return as_object(json.loads(cipher.decrypt(event.payload_ct, TABLE, "payload_ct", event.id)))


def handler_for(source: str) -> InboundHandler:
    # Imported here: the handlers' modules import this one (InboundContext), a cycle at import.
    from tasks import wiring

    handler = wiring.INBOUND_HANDLERS.get(source)
    if handler is None:
        raise UnknownEventSource(f"no handler for source {source!r}")
    return handler


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
    if event is None or event.status != InboundEventStatus.PENDING:
        return False
    handler = handler_for(event.source)
    payload = decrypt_payload(cipher, event)
    handler(InboundContext(session, cipher, event, payload, after_commit, now))
    event.status = InboundEventStatus.PROCESSED
    event.processed_at = now
    return True


def mark_event_failed(org_id: uuid.UUID, event_id: uuid.UUID, reason: str) -> None:
    context = get_context()
    with context.db.tenant(org_id) as session:
        event = session.get(InboundEvent, event_id)
        if event is not None and event.status == InboundEventStatus.PENDING:
            event.status = InboundEventStatus.FAILED
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
