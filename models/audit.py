"""Writing the audit log. Callers pass ids, codes and counts, never PII."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.orm import Session

from models.tables import AuditEntry


def record_audit(
    session: Session,
    actor: str,
    action: str,
    *,
    org_id: uuid.UUID | None = None,
    target: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    session.add(
        AuditEntry(org_id=org_id, actor=actor, action=action, target=target, details=details or {})
    )
