"""Extension points shared by the feature modules. Each registers here at import time;
tasks/__init__.py imports them all, so importing `tasks` wires everything.

Contracts:
- Inbound sources (InboundEvent.source) and their decrypted payloads:
    "api"            {"name", "phone", "email", "message", "source", "consent", "received_at"}
    "twilio_sms"     {"params": {form field: first value}}   inbound SMS (From, To, Body, ...)
    "twilio_status"  {"params": {...}}                       MessageSid, MessageStatus, ErrorCode
    "stripe"         the verified Stripe event object (dict)
    "telegram"       the verified Telegram Update object (dict)
    "meta"           {"object", "entry": one verified Meta webhook entry with one message,
                      "position": the message's index in its webhook body}
- Domain events (`publish`): type is one of lead.created, lead.updated, message.received,
  message.status, optout.changed, endpoint.disabled; `data` holds ids and codes only (no
  PII); subscribers (webhooks) build what they send from the ids, inside the same session.
- Lead changes (`notify_lead_change`): alerts need the lead row and the message text.
- Sweeps (`sweep("inbox")`, `sweep("webhooks")`): functions that re-enqueue rows left pending;
  each takes the task context and returns how many it re-enqueued.
- Attention lists (`attention("unknown_sms")`, ...): functions returning rows operators must
  look at (no PII), shown by `leadline dlq list` and the ops page.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from models.crypto import OrgCipher
from models.tables import InboundEvent, Lead
from tasks.after_commit import AfterCommit


@dataclass
class EventContext:
    """Everything a source handler may use while processing one inbound event."""

    session: Session
    cipher: OrgCipher
    event: InboundEvent
    payload: dict[str, Any]
    after_commit: AfterCommit
    now: datetime

    @property
    def org_id(self) -> uuid.UUID:
        return self.cipher.org_id


@dataclass(frozen=True)
class LeadChange:
    """A lead was created or updated; listeners fan out alerts in the same transaction."""

    session: Session
    cipher: OrgCipher
    lead: Lead
    created: bool
    message: str | None
    after_commit: AfterCommit
    now: datetime


@dataclass(frozen=True)
class DomainEvent:
    """Something a customer's system may want to hear about (outbound webhooks)."""

    session: Session
    cipher: OrgCipher
    type: str
    data: dict[str, Any]
    after_commit: AfterCommit
    now: datetime
    id: uuid.UUID = field(default_factory=uuid.uuid4)

    @property
    def org_id(self) -> uuid.UUID:
        return self.cipher.org_id


EventHandler = Callable[[EventContext], None]
LeadListener = Callable[[LeadChange], None]
DomainListener = Callable[[DomainEvent], None]
Sweep = Callable[[Any], int]
AttentionSource = Callable[[Session], list[dict[str, Any]]]

EVENT_HANDLERS: dict[str, EventHandler] = {}
LEAD_LISTENERS: list[LeadListener] = []
DOMAIN_LISTENERS: list[DomainListener] = []
SWEEPS: dict[str, list[Sweep]] = {}
ATTENTION: dict[str, AttentionSource] = {}


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


def subscribe(listener: DomainListener) -> DomainListener:
    DOMAIN_LISTENERS.append(listener)
    return listener


def publish(event: DomainEvent) -> None:
    for listener in DOMAIN_LISTENERS:
        listener(event)


def sweep(group: str) -> Callable[[Sweep], Sweep]:
    def register(fn: Sweep) -> Sweep:
        SWEEPS.setdefault(group, []).append(fn)
        return fn

    return register


def attention(name: str) -> Callable[[AttentionSource], AttentionSource]:
    def register(fn: AttentionSource) -> AttentionSource:
        ATTENTION[name] = fn
        return fn

    return register
