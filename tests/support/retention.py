"""Helpers for the scheduler and retention tests."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from sqlalchemy import Table, func, select

from models.leads import LeadFields, upsert_lead
from models.retention import tenant_tables
from models.tables import Organization

if TYPE_CHECKING:
    from tasks.context import TaskContext

NOTES = "test_lead_notes"


def add_lead(context: TaskContext, org_id: uuid.UUID, **fields: Any) -> uuid.UUID:
    with context.db.tenant(org_id) as session:
        cipher = context.keys.cipher(session, org_id)
        lead_id: uuid.UUID = upsert_lead(session, cipher, LeadFields(**fields)).lead.id
    return lead_id


def add_note(
    context: TaskContext, table: Table, org_id: uuid.UUID, lead_id: uuid.UUID, body: str
) -> None:
    note_id = uuid.uuid4()
    with context.db.tenant(org_id) as session:
        body_ct = context.keys.cipher(session, org_id).encrypt(
            body.encode(), NOTES, "body_ct", note_id
        )
        session.execute(
            table.insert().values(id=note_id, org_id=org_id, lead_id=lead_id, body_ct=body_ct)
        )


def org_row_counts(context: TaskContext, org_id: uuid.UUID) -> dict[str, int]:
    """Rows of the org in every tenant table, and its organisations row."""
    counts: dict[str, int] = {}
    with context.db.maintenance() as session:
        for table in tenant_tables():
            query = select(func.count()).select_from(table).where(table.c.org_id == org_id)
            counts[table.name] = session.scalar(query) or 0
        org = select(func.count()).select_from(Organization).where(Organization.id == org_id)
        counts["organizations"] = session.scalar(org) or 0
    return counts
