"""A lead changed by the business (PATCH /v1/leads/{id}): status and assignee, audited, and
`lead.updated` published through the domain-event path (webhooks), in the same transaction."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from leadline.errors import NotFoundError
from models.audit import record_audit
from models.crypto import OrgCipher
from models.lead_listing import LeadRecord, lead_record
from models.leads import TABLE
from models.tables import Lead
from models.webhooks import EventType
from tasks.after_commit import AfterCommit
from tasks.domain_events import DomainEvent, publish


@dataclass(frozen=True)
class LeadChanges:
    """What to change; `assignee_given` tells "clear the assignee" (None) from "leave it"."""

    status: str | None = None
    assignee: str | None = None
    assignee_given: bool = False

    def fields(self) -> list[str]:
        return [
            name
            for name, given in (
                ("status", self.status is not None),
                ("assignee", self.assignee_given),
            )
            if given
        ]


def update_lead(
    session: Session,
    cipher: OrgCipher,
    lead_id: uuid.UUID,
    changes: LeadChanges,
    actor: str,
    after_commit: AfterCommit,
    now: datetime,
) -> LeadRecord:
    """Tenant session. Raises NotFoundError (another org's lead included: RLS hides it)."""
    lead = session.get(Lead, lead_id, with_for_update=True)
    if lead is None:
        raise NotFoundError("lead not found")
    if changes.status is not None:
        lead.status = changes.status
    if changes.assignee_given:
        lead.assignee_ct = cipher.encrypt_text(changes.assignee, TABLE, "assignee_ct", lead.id)
    lead.updated_at = now
    session.flush()
    changed = changes.fields()
    details: dict[str, object] = {"fields": changed}
    if changes.status is not None:
        details["status"] = changes.status
    record_audit(
        session, actor, "lead.updated", org_id=lead.org_id, target=str(lead.id), details=details
    )
    data = {"lead_id": str(lead.id), "source": lead.source, "changed": changed}
    publish(DomainEvent(session, cipher, EventType.LEAD_UPDATED, data, after_commit, now))
    return lead_record(cipher, lead)
