"""Extension points: how each inbound source is handled and who hears about lead changes.

Feature modules register here at import; tasks/__init__.py imports them all.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from models.crypto import OrgCipher
from models.tables import InboundEvent, Lead
from tasks.outbox import Outbox


@dataclass
class EventContext:
    """Everything a source handler may use while processing one inbound event."""

    session: Session
    cipher: OrgCipher
    event: InboundEvent
    payload: dict[str, Any]
    outbox: Outbox
    now: datetime

    @property
    def org_id(self) -> uuid.UUID:
        return self.cipher.org_id


@dataclass(frozen=True)
class LeadChange:
    """A lead was created or updated; listeners fan out alerts and webhooks in the same tx."""

    session: Session
    cipher: OrgCipher
    lead: Lead
    created: bool
    message: str | None
    outbox: Outbox
    now: datetime


EventHandler = Callable[[EventContext], None]
LeadListener = Callable[[LeadChange], None]

EVENT_HANDLERS: dict[str, EventHandler] = {}
LEAD_LISTENERS: list[LeadListener] = []


def handles(source: str) -> Callable[[EventHandler], EventHandler]:
    def register(handler: EventHandler) -> EventHandler:
        EVENT_HANDLERS[source] = handler
        return handler

    return register


def on_lead_change(listener: LeadListener) -> LeadListener:
    LEAD_LISTENERS.append(listener)
    return listener


def notify_lead_change(change: LeadChange) -> None:
    for listener in LEAD_LISTENERS:
        listener(change)
