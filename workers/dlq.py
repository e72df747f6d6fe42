"""Dead-letter records: writing them when Dramatiq gives up, and the operator's tools.

Plain functions over a maintenance session (the CLI, the ops page and the middleware call
them). A replay re-enqueues the original message id, so idempotent actors recognise work they
already did; the row's state makes a second replay of the same entry a no-op.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime

import dramatiq
from dramatiq.common import current_millis
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from leadline.errors import NotFoundError
from leadline.jsondata import JsonObject
from models.audit import record_audit
from models.ops import DeadLetter, DeadLetterState
from workers.brokers import LeadlineBroker

SYSTEM_ACTOR = "system:worker"


@dataclass(frozen=True)
class Failure:
    """What the dead-letter middleware knows about a message it saw fail for good."""

    message_id: str
    queue: str
    actor: str
    reason: str
    error_class: str
    error_message: str
    traceback: str | None = None
    retries: int = 0
    broker_message_id: str | None = None
    args: list[object] = field(default_factory=list)
    kwargs: JsonObject = field(default_factory=dict)


@dataclass(frozen=True)
class DeadLetterFilter:
    queue: str | None = None
    actor: str | None = None
    since: datetime | None = None
    before: datetime | None = None
    states: tuple[str, ...] = (DeadLetterState.DEAD,)
    limit: int = 200


@dataclass(frozen=True)
class DeadLetterResult:
    """The result of one replay or purge: `done` is False when the state made it a no-op."""

    dead_letter_id: uuid.UUID
    message_id: str
    actor: str
    done: bool
    state: str


def record_dead_letter(session: Session, failure: Failure, now: datetime) -> bool:
    """Insert or refresh the row for `failure`. True when the message newly became dead."""
    columns = _failure_columns(failure) | {
        "id": uuid.uuid4(),
        "state": DeadLetterState.DEAD,
        "failures": 1,
        "replays": 0,
        "first_failed_at": now,
        "last_failed_at": now,
    }
    inserted = session.execute(
        insert(DeadLetter)
        .values(**columns)
        .on_conflict_do_nothing(index_elements=["message_id"])
        .returning(DeadLetter.id)
    ).scalar_one_or_none()
    if inserted is not None:
        _audit_recorded(session, inserted, failure)
        return True
    row = _lock_by_message_id(session, failure.message_id)
    became_dead = row.state != DeadLetterState.DEAD
    for name, value in _failure_columns(failure).items():
        setattr(row, name, value)
    row.last_failed_at = now
    if became_dead:
        row.state = DeadLetterState.DEAD
        row.failures += 1
        _audit_recorded(session, row.id, failure)
    return became_dead


def _failure_columns(failure: Failure) -> dict[str, object]:
    return {
        "message_id": failure.message_id,
        "broker_message_id": failure.broker_message_id,
        "queue": failure.queue,
        "actor": failure.actor,
        "args": failure.args,
        "kwargs": failure.kwargs,
        "reason": failure.reason,
        "retries": failure.retries,
        "error_class": failure.error_class,
        "error_message": failure.error_message,
        "traceback": failure.traceback,
    }


def _audit_recorded(session: Session, dead_letter_id: uuid.UUID, failure: Failure) -> None:
    details = {
        "message_id": failure.message_id,
        "actor": failure.actor,
        "queue": failure.queue,
        "reason": failure.reason,
        "error_class": failure.error_class,
    }
    record_audit(session, SYSTEM_ACTOR, "dlq.recorded", target=str(dead_letter_id), details=details)


def _lock_by_message_id(session: Session, message_id: str) -> DeadLetter:
    query = select(DeadLetter).where(DeadLetter.message_id == message_id).with_for_update()
    return session.scalars(query).one()


def list_dead_letters(session: Session, where: DeadLetterFilter) -> list[DeadLetter]:
    query = select(DeadLetter).where(DeadLetter.state.in_(where.states))
    if where.queue:
        query = query.where(DeadLetter.queue == where.queue)
    if where.actor:
        query = query.where(DeadLetter.actor == where.actor)
    if where.since:
        query = query.where(DeadLetter.last_failed_at >= where.since)
    if where.before:
        query = query.where(DeadLetter.last_failed_at < where.before)
    query = query.order_by(DeadLetter.last_failed_at.desc()).limit(where.limit)
    return list(session.scalars(query))


def find_dead_letter(session: Session, key: str, *, lock: bool = False) -> DeadLetter:
    """By row id or by message id. NotFoundError when neither matches."""
    try:
        key_uuid = uuid.UUID(key)
    except ValueError:
        raise NotFoundError("dead letter ids are UUIDs (`leadline dlq list` shows them)") from None
    query = select(DeadLetter).where(
        (DeadLetter.id == key_uuid) | (DeadLetter.message_id == str(key_uuid))
    )
    row = session.scalars(query.with_for_update() if lock else query).first()
    if row is None:
        raise NotFoundError(f"no dead letter {key} (`leadline dlq list --state all` shows them)")
    return row


def replay_dead_letter(
    session: Session, broker: LeadlineBroker, key: str, operator: str, now: datetime
) -> DeadLetterResult:
    """Re-enqueue a dead message under its original id, once; the row stays locked meanwhile.

    The send happens before COMMIT on purpose: if it fails the row stays `dead`, and a replayed
    message that fails again at once waits on this row's lock, then marks it `dead` anew.
    """
    row = find_dead_letter(session, key, lock=True)
    if row.state != DeadLetterState.DEAD:
        return _outcome(row, done=False)
    broker.enqueue(rebuilt_message(row))
    discard_broker_copy(broker, row)
    row.state, row.replayed_at, row.replays = DeadLetterState.REPLAYED, now, row.replays + 1
    record_audit(session, operator, "dlq.replayed", target=str(row.id), details=_details(row))
    return _outcome(row, done=True)


def rebuilt_message(row: DeadLetter) -> dramatiq.Message[object]:
    """The original message (same id, args, actor, queue) with fresh options: a new retry
    budget, and a new timestamp so age limits count from the replay."""
    return dramatiq.Message(
        queue_name=row.queue,
        actor_name=row.actor,
        args=tuple(row.args),
        kwargs=dict(row.kwargs),
        options={},
        message_id=row.message_id,
        message_timestamp=current_millis(),
    )


def purge_dead_letter(
    session: Session, broker: LeadlineBroker, key: str, operator: str, now: datetime
) -> DeadLetterResult:
    """Give up on a message for good: drop it from the broker and scrub the row to a tombstone."""
    row = find_dead_letter(session, key, lock=True)
    if row.state == DeadLetterState.PURGED:
        return _outcome(row, done=False)
    discard_broker_copy(broker, row)
    row.state, row.purged_at, row.traceback = DeadLetterState.PURGED, now, None
    row.args, row.kwargs = [], {}
    record_audit(session, operator, "dlq.purged", target=str(row.id), details=_details(row))
    return _outcome(row, done=True)


def discard_broker_copy(broker: LeadlineBroker, row: DeadLetter) -> None:
    """Remove Dramatiq's own copy in `<queue>.XQ`, so no other tool can requeue it again."""
    if row.broker_message_id is not None:
        broker.discard_dead_letter(row.queue, row.broker_message_id)


def _details(row: DeadLetter) -> dict[str, str]:
    return {"message_id": row.message_id, "actor": row.actor, "queue": row.queue}


def _outcome(row: DeadLetter, *, done: bool) -> DeadLetterResult:
    return DeadLetterResult(row.id, row.message_id, row.actor, done, row.state)


def dead_letter_summary(row: DeadLetter, now: datetime) -> JsonObject:
    """The PII-free fields operators see in lists (CLI and ops page)."""
    return {
        "id": str(row.id),
        "message_id": row.message_id,
        "queue": row.queue,
        "actor": row.actor,
        "reason": row.reason,
        "error": f"{row.error_class}: {row.error_message}"
        if row.error_message
        else row.error_class,
        "retries": row.retries,
        "failures": row.failures,
        "state": row.state,
        "age_seconds": max(0, int((now - row.last_failed_at).total_seconds())),
        "first_failed_at": row.first_failed_at.isoformat(),
        "last_failed_at": row.last_failed_at.isoformat(),
    }


def error_text(row: DeadLetter) -> str:
    return f"{row.error_class}: {row.error_message}" if row.error_message else row.error_class


def dead_letter_detail(row: DeadLetter, now: datetime) -> JsonObject:
    detail = dead_letter_summary(row, now)
    detail.update(
        args=row.args,
        kwargs=row.kwargs,
        replays=row.replays,
        replayed_at=row.replayed_at.isoformat() if row.replayed_at else None,
        purged_at=row.purged_at.isoformat() if row.purged_at else None,
        traceback=row.traceback,
    )
    return detail
