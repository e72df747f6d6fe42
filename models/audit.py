"""Writing and reading the audit log. Callers pass ids, codes and counts, never PII."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from models.db import render
from models.pagination import Position, after
from models.tables import AuditEntry

# An opt-out recorded or lifted (tasks/optouts.py); every one stays on record after a START,
# which campaigns read (models/campaigns.py).
OPTOUT_ADDED = "optout.added"
OPTOUT_REMOVED = "optout.removed"


def record_audit(
    session: Session,
    actor: str,
    action: str,
    *,
    org_id: uuid.UUID | None = None,
    target: str | None = None,
    details: Mapping[str, object] | None = None,
) -> None:
    session.add(
        AuditEntry(
            org_id=org_id, actor=actor, action=action, target=target, details=dict(details or {})
        )
    )


def audit_insert(actor: str, action: str, *, org_id: uuid.UUID, target: str) -> str:
    """The INSERT of an audit entry without details, rendered for a flight of statements
    (`models.db.commit_with`): what `record_audit` adds, without the ORM's unit of work."""
    return render(_INSERT_AUDIT, uuid.uuid4(), org_id, actor, action, target)


_INSERT_AUDIT = (
    "INSERT INTO audit_log (id, org_id, actor, action, target, details) "
    "VALUES ({}, {}, {}, {}, {}, '{{}}'::jsonb)"
)


@dataclass(frozen=True)
class AuditQuery:
    org_id: uuid.UUID | None = None
    action: str | None = None
    since: datetime | None = None
    limit: int = 200


def list_audit(session: Session, where: AuditQuery) -> list[AuditEntry]:
    """Newest first. `action` ending in `*` matches a prefix (`dlq.*`)."""
    query = select(AuditEntry)
    if where.org_id is not None:
        query = query.where(AuditEntry.org_id == where.org_id)
    if where.action and where.action.endswith("*"):
        prefix = where.action[:-1].replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = query.where(AuditEntry.action.like(prefix + "%", escape="\\"))
    elif where.action:
        query = query.where(AuditEntry.action == where.action)
    if where.since is not None:
        query = query.where(AuditEntry.created_at >= where.since)
    order = (AuditEntry.created_at.desc(), AuditEntry.id.desc())
    return list(session.scalars(query.order_by(*order).limit(where.limit)))


def audit_page(session: Session, position: Position | None, limit: int) -> list[AuditEntry]:
    """Tenant session: the organisation's entries, newest first, after `position`."""
    query = select(AuditEntry)
    if position is not None:
        query = query.where(
            after(AuditEntry.created_at, AuditEntry.id, position, newest_first=True)
        )
    order = (AuditEntry.created_at.desc(), AuditEntry.id.desc())
    return list(session.scalars(query.order_by(*order).limit(limit)))
