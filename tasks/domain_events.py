"""What the pipeline tells others about: domain events for customers' systems (outbound
webhooks) and lead changes for the business's alerts. Both are handled inside the transaction
of the change; what they queue is enqueued after its COMMIT (`after_commit`).

Who listens is the table in tasks/wiring.py.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.orm import Session

from models.crypto import OrgCipher
from models.tables import Lead
from models.webhooks import EventType
from tasks.after_commit import AfterCommit

EventData = Mapping[str, str | bool | Sequence[str] | None]


@dataclass(frozen=True)
class DomainEvent:
    """Something a customer's system may want to hear about. `data` holds ids and codes
    only (no PII); subscribers build what they send from the ids, inside the same session."""

    session: Session
    cipher: OrgCipher
    type: EventType
    data: EventData
    after_commit: AfterCommit
    now: datetime
    id: uuid.UUID = field(default_factory=uuid.uuid4)

    @property
    def org_id(self) -> uuid.UUID:
        return self.cipher.org_id


@dataclass(frozen=True)
class LeadChange:
    """A lead was created or updated, with the message that came with it if any."""

    session: Session
    cipher: OrgCipher
    lead: Lead
    created: bool
    message: str | None
    after_commit: AfterCommit
    now: datetime


def publish(event: DomainEvent) -> None:
    # Imported here: the subscribers' modules publish events themselves (a cycle at import).
    from tasks import wiring

    for subscriber in wiring.DOMAIN_EVENT_SUBSCRIBERS:
        subscriber(event)


def notify_lead_change(change: LeadChange) -> None:
    from tasks import wiring  # as in publish

    for listener in wiring.LEAD_CHANGE_LISTENERS:
        listener(change)
