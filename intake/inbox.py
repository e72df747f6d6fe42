"""Storing a verified inbound event: encrypt, insert once per external id, commit, enqueue.

An inbound STOP is also recorded as a suppression in that transaction (record_at_the_door),
so it holds from the 2xx on even if Redis is down and the event waits for the sweeper.
"""

from __future__ import annotations

import hmac
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from leadline.jsondata import JsonObject
from leadline.metrics import EVENTS_ACCEPTED, EVENTS_DEDUPLICATED
from models.audit import audit_insert
from models.crypto import OrgCipher
from models.db import commit_with, insert_statement, psycopg_execute
from models.routing import request_fingerprint
from models.tables import InboundEvent, InboundEventStatus, InboundSource
from tasks.after_commit import AfterCommit, enqueue_or_defer
from tasks.context import TaskContext
from tasks.inbound_events import encrypt_payload, mark_optout_recorded, process_event
from tasks.inbound_sms import is_optout, record_sms_optout
from tasks.meta import is_meta_optout, record_meta_optout


@dataclass(frozen=True)
class StoredEvent:
    id: uuid.UUID
    created: bool
    enqueued: bool
    same_request: bool = True  # False: the external id was first used for a different request


def store_inbound_event(
    context: TaskContext,
    org_id: uuid.UUID,
    source: str,
    external_id: str | None,
    payload: JsonObject,
    request_id: str | None = None,
    canonical_request: str | None = None,
    event_id: uuid.UUID | None = None,
    received_at: datetime | None = None,
    actor: str | None = None,
) -> StoredEvent:
    """Insert the event unless (org, source, external id) or its id exists; enqueue only a new one.

    With `canonical_request`, a keyed fingerprint of it is kept, and an existing event with a
    different fingerprint comes back with `same_request=False` (nothing is stored). An
    `event_id` chosen in advance (a spooled event, intake/spool.py) makes a second replay of
    an event without external id a no-op too, and `received_at` is when it really arrived
    (START and STOP are ordered by it). With `actor` (a tenant API caller), the new event is
    audited as `lead.submitted` in the same transaction."""
    event_id = event_id or uuid.uuid4()
    after_commit = AfterCommit()
    with context.db.tenant(org_id) as session:
        cipher = context.keys.cipher(session, org_id)
        fingerprint = (
            request_fingerprint(cipher, canonical_request)
            if canonical_request is not None and external_id is not None
            else None
        )
        values = {
            "id": event_id,
            "org_id": org_id,
            "source": source,
            "external_id": external_id,
            "payload_ct": encrypt_payload(cipher, event_id, payload),
            "status": InboundEventStatus.PENDING.value,
            "request_id": request_id,
            "request_fingerprint": fingerprint,
            **({"received_at": received_at} if received_at is not None else {}),
        }
        # On psycopg, not SQLAlchemy's ORM-enabled insert (9 % of an intake process's CPU).
        query = insert_statement("inbound_events", tuple(values), _ON_CONFLICT_RETURNING_ID)
        row = psycopg_execute(session, query, tuple(values.values())).fetchone()
        inserted = row[0] if row is not None else None
        if inserted is None:
            same_event = (
                InboundEvent.id == event_id
                if external_id is None
                else (InboundEvent.source == source) & (InboundEvent.external_id == external_id)
            )
            existing = session.execute(
                select(InboundEvent.id, InboundEvent.request_fingerprint).where(same_event)
            ).one()
            EVENTS_DEDUPLICATED.labels(source=source).inc()
            same = same_fingerprint(existing.request_fingerprint, fingerprint)
            return StoredEvent(existing.id, created=False, enqueued=False, same_request=same)
        now = context.clock()
        record_at_the_door(
            session, cipher, event_id, source, payload, after_commit, now, received_at
        )
        if actor is not None:  # the audit entry goes with the COMMIT, in one round trip
            audit = audit_insert(actor, "lead.submitted", org_id=org_id, target=str(event_id))
            commit_with(session, audit)
    after_commit.flush()
    EVENTS_ACCEPTED.labels(source=source).inc()
    enqueued = enqueue_or_defer(process_event, str(org_id), str(event_id))
    return StoredEvent(event_id, created=True, enqueued=enqueued)


_ON_CONFLICT_RETURNING_ID = "ON CONFLICT DO NOTHING RETURNING id"


def same_fingerprint(stored: bytes | None, offered: bytes | None) -> bool:
    """Unknown on either side (events stored before fingerprints, other sources) counts as same."""
    return stored is None or offered is None or hmac.compare_digest(stored, offered)


def is_door_optout(source: str, payload: JsonObject) -> bool:
    """An inbound message that opts out, by SMS or on WhatsApp, Messenger or Instagram."""
    if source == InboundSource.TWILIO_SMS:
        return is_optout(payload)
    return source == InboundSource.META and is_meta_optout(payload)


def record_door_optout(
    session: Session,
    cipher: OrgCipher,
    source: str,
    payload: JsonObject,
    after_commit: AfterCommit,
    now: datetime,
    received_at: datetime | None = None,
) -> bool:
    """Record the opt-out an inbound message makes, if it makes one; True if it did."""
    if source == InboundSource.TWILIO_SMS:
        return record_sms_optout(session, cipher, payload, after_commit, now, received_at)
    if source == InboundSource.META:
        return record_meta_optout(session, cipher, payload, after_commit, now, received_at)
    return False


def record_at_the_door(
    session: Session,
    cipher: OrgCipher,
    event_id: uuid.UUID,
    source: str,
    payload: JsonObject,
    after_commit: AfterCommit,
    now: datetime,
    received_at: datetime | None = None,
) -> None:
    """What must hold from the 2xx on, in the event's own transaction: an inbound STOP, by
    SMS or on WhatsApp, Messenger or Instagram. The event is marked so the worker does not
    apply it again."""
    if record_door_optout(session, cipher, source, payload, after_commit, now, received_at):
        mark_optout_recorded(session, event_id)
