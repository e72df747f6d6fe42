"""Account deletion: crypto-shred the org's keys first, then delete its rows and backups.

From the commit that removes the org's data keys, every ciphertext of the org (rows, and the
wrapped bundle keys of its backups, wherever copies of them are) is unreadable; the org's entry
then leaves the key escrow in the backup store, so not even the master key and the escrow
open its backups. The rest is housekeeping done in short batches; the organisation row goes
last, so a run interrupted half-way, or one whose backup objects the store would not delete,
is resumed by the next one (the org stays in status "deleting").
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TypedDict

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from leadline.errors import NotFoundError
from leadline.logging import get_logger
from leadline.objectstore import StorageError
from models.audit import record_audit
from models.keys import shred_org_keys
from models.retention import delete_all, tenant_tables
from models.tables import Organization
from tasks.backups import forget_in_key_escrow, remove_org_backups
from tasks.context import TaskContext

DELETING = "deleting"
log = get_logger(__name__)


class OrgDeletion(TypedDict):
    rows: dict[str, int]  # deleted per table
    backup_files: int


def request_org_deletion(
    session: Session, org_id: uuid.UUID, now: datetime, actor: str
) -> datetime:
    """Make the org due for deletion now (an earlier due date is kept). Maintenance scope."""
    org = session.get(Organization, org_id, with_for_update=True)
    if org is None:
        raise NotFoundError("organisation not found (`leadline org list` shows them)")
    if org.deletion_due_at is None or org.deletion_due_at > now:
        org.deletion_due_at = now
    record_audit(session, actor, "org.deletion_requested", target=str(org_id))
    return org.deletion_due_at


def orgs_due_for_deletion(
    session: Session, now: datetime, limit: int, skip: frozenset[uuid.UUID] = frozenset()
) -> list[uuid.UUID]:
    due = or_(Organization.status == DELETING, Organization.deletion_due_at <= now)
    query = select(Organization.id).where(due, Organization.id.not_in(skip))
    return list(session.scalars(query.order_by(Organization.id).limit(limit)))


def process_deletions(context: TaskContext, now: datetime) -> dict[str, int]:
    """Every due organisation; one whose backup objects stay in the store is left in status
    `deleting` (its keys are already shredded) and counted, and the others go on."""
    batch = context.settings.leadline_retention_batch_size
    deleted = 0
    unfinished: set[uuid.UUID] = set()
    while True:
        with context.db.maintenance() as session:
            due = orgs_due_for_deletion(session, now, batch, frozenset(unfinished))
        for org_id in due:
            try:
                deleted += bool(delete_organization(context, org_id))
            except StorageError as exc:
                log.error("organisation deletion unfinished", org_id=str(org_id), reason=str(exc))
                unfinished.add(org_id)
        if len(due) < batch:
            return {"orgs_deleted": deleted, "unfinished": len(unfinished)}


def delete_organization(context: TaskContext, org_id: uuid.UUID) -> OrgDeletion | None:
    """Shred keys (database, then escrow), delete every tenant row, the backup files, then
    the org. Idempotent: an interrupted run is resumed, escrow included, by the next one."""
    if not shred_keys(context, org_id):
        return None
    forget_in_key_escrow(context, org_id, context.clock())
    rows = delete_tenant_rows(context, org_id)
    backup_files = remove_org_backups(context, org_id)
    summary: OrgDeletion = {"rows": rows, "backup_files": backup_files}
    with context.db.maintenance() as session:
        org = session.get(Organization, org_id, with_for_update=True)
        if org is not None:
            session.delete(org)
        # org_id stays NULL: the entry must outlive the org and hold no tenant data.
        record_audit(session, "system", "org.deleted", target=str(org_id), details=summary)
    return summary


def shred_keys(context: TaskContext, org_id: uuid.UUID) -> bool:
    with context.db.maintenance() as session:
        org = session.get(Organization, org_id, with_for_update=True)
        if org is None:
            return False
        shredded = shred_org_keys(session, org_id)
        if org.status != DELETING:
            org.status = DELETING
            details = {"data_keys": shredded}
            record_audit(
                session, "system", "org.keys_shredded", target=str(org_id), details=details
            )
    context.keys.forget(org_id)
    return True


def delete_tenant_rows(context: TaskContext, org_id: uuid.UUID) -> dict[str, int]:
    batch = context.settings.leadline_retention_batch_size
    counts: dict[str, int] = {}
    for table in reversed(tenant_tables()):
        deleted = delete_all(context.db.maintenance, table, {"org_id": org_id}, batch)
        if deleted:
            counts[table.name] = deleted
    return counts
