"""Processing stored inbound events: decrypt, hand to the handler of their source (the table
in tasks/wiring.py), mark processed, all in one transaction; what the handler queued is
enqueued after COMMIT."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlalchemy import func, update
from sqlalchemy.orm import Session

from leadline.errors import CryptoError, KeyNotFoundError, LeadlineError
from leadline.jsondata import JsonObject, as_object
from leadline.logging import get_logger
from models.crypto import OrgCipher
from models.db import commit_with, render
from models.tables import InboundEvent, InboundEventStatus
from tasks.after_commit import AfterCommit
from tasks.context import TaskContext, get_context
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


class StoredPayload(Protocol):
    """What decrypting an event's payload needs: the row's id and the ciphertext."""

    @property
    def id(self) -> uuid.UUID: ...

    @property
    def payload_ct(self) -> bytes | None: ...


@dataclass(frozen=True)
class PendingEvent:
    """The locked event row's columns a handler may read: a snapshot, not an ORM object."""

    id: uuid.UUID
    source: str
    payload_ct: bytes | None
    received_at: datetime
    optout_recorded_at: datetime | None


@dataclass
class InboundContext:
    """Everything a source's handler may use while processing one inbound event.

    A handler that created or updated a lead sets `processed_lead_id`; it is stored with the
    event's status (GET /v1/events/{id})."""

    session: Session
    cipher: OrgCipher
    event: PendingEvent
    payload: JsonObject
    after_commit: AfterCommit
    now: datetime
    processed_lead_id: uuid.UUID | None = None

    @property
    def org_id(self) -> uuid.UUID:
        return self.cipher.org_id


InboundHandler = Callable[[InboundContext], None]


def encrypt_payload(cipher: OrgCipher, event_id: uuid.UUID, payload: JsonObject) -> bytes:
    return cipher.encrypt(json.dumps(payload).encode(), TABLE, "payload_ct", event_id)


def decrypt_payload(cipher: OrgCipher, event: StoredPayload) -> JsonObject:
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


def process_stored_event(
    context: TaskContext, org_id: uuid.UUID, event_id: uuid.UUID, after_commit: AfterCommit
) -> bool:
    """Handle one pending event exactly once, in one transaction. Returns False when there
    was nothing to do (processed already, or locked by another worker).

    The row is locked in the round trip that begins the transaction and marked processed in
    the one that commits it, by plain psycopg statements: the ORM's unit of work, then
    SQLAlchemy Core's per-statement work, were most of an event's CPU, then its seven round
    trips (bench/README.md)."""
    lock = render(_LOCK_PENDING, event_id)
    with context.db.tenant_opening_with(org_id, lock) as (session, rows):
        if not rows or rows[0][0] != InboundEventStatus.PENDING:
            return False
        event = PendingEvent(*rows[0][1:])
        cipher = context.keys.cipher(session, org_id)
        handler = handler_for(event.source)
        payload = decrypt_payload(cipher, event)
        now = context.clock()
        inbound = InboundContext(session, cipher, event, payload, after_commit, now)
        handler(inbound)
        done = (InboundEventStatus.PROCESSED.value, now, inbound.processed_lead_id, event_id)
        commit_with(session, render(_MARK_PROCESSED, *done))
    return True


# The columns are PendingEvent's fields, in order, after the status.
_LOCK_PENDING = (
    "SELECT status, id, source, payload_ct, received_at, optout_recorded_at "
    "FROM inbound_events WHERE id = {} FOR UPDATE SKIP LOCKED"
)
# processed_lead_id is only ever written here, so a handler that names no lead leaves NULL.
_MARK_PROCESSED = (
    "UPDATE inbound_events SET status = {}, processed_at = {}, processed_lead_id = {} WHERE id = {}"
)


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
        handled = process_stored_event(context, org, event, after_commit)
    except (KeyNotFoundError, CryptoError, UnknownEventSource) as exc:
        log.error("inbound event cannot be processed", event_id=event_id, error=type(exc).__name__)
        mark_event_failed(org, event, type(exc).__name__)
        raise
    after_commit.flush()
    log.info("inbound event done", event_id=event_id, handled=handled)
