"""Intake test helpers: numbers to own, and reading back the inbound events stored."""

from __future__ import annotations

import random
import uuid
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from models.normalize import InvalidPhoneNumber
from models.routing import add_phone_number
from models.tables import InboundEvent

if TYPE_CHECKING:
    from tasks.context import TaskContext

AREA_CODES = ("212", "312", "415", "617", "646", "718", "206", "303")


def random_number() -> str:
    return f"+1{random.choice(AREA_CODES)}{random.randint(2_000_000, 9_999_999)}"


def events_of(context: TaskContext, org_id: uuid.UUID) -> list[InboundEvent]:
    with context.db.tenant(org_id) as session:
        return list(session.scalars(select(InboundEvent).order_by(InboundEvent.received_at)))


def all_event_count(context: TaskContext) -> int:
    with context.db.maintenance() as session:
        return len(session.scalars(select(InboundEvent.id)).all())


def events_settled(context: TaskContext, org_id: uuid.UUID, count: int) -> bool:
    """`count` events stored for the org and none left pending."""
    events = events_of(context, org_id)
    return len(events) == count and all(e.status != "pending" for e in events)


def add_random_number(session: Session, org_id: uuid.UUID) -> str:
    """A business number of the org's own (random: the session's database is shared)."""
    while True:
        try:
            return add_phone_number(session, org_id, random_number(), actor="test")
        except InvalidPhoneNumber:
            continue
