"""Storing an import and writing its rows, one batch (chunk) per transaction.

`start_import` stores the scanned file (encrypted chunks) and, after COMMIT, enqueues up to
CONCURRENT_BATCHES `import_batch` messages, so the worker processes of every core share the
work. Each message claims one chunk no one else is writing, writes its leads in bulk, records
its rejected rows, deletes the chunk and advances `next_line` and the counters (under the
import's row lock), all in one transaction, then enqueues itself again while chunks are
left. A worker killed mid-batch leaves its chunk in place: the next message (another chain,
a redelivery, or one sent by `sweep_imports`) writes it from the start, so nothing is lost
or written twice.

Rows dedupe against the org's leads by blind index, the same way POST /v1/leads does: a row
whose phone or email is already a lead (or an earlier row of the file) completes that lead
(`updated`). Suppressions are never touched: an imported `consent_sms=true` is consent
evidence, not a START (tasks/optouts.py), so a STOP stays in force. Imported leads raise no
alerts or per-lead webhooks (a 100,000-row list would page the business 100,000 times).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from models.audit import record_audit
from models.crypto import OrgCipher
from models.imports import (
    ImportStatus,
    LeadImport,
    NewImport,
    NumberedRow,
    Rejection,
    StoredImport,
    chunk_rows,
    claim_chunk,
    drop_chunk,
    first_unwritten_line,
    lock_import,
    record_rejections,
    stale_imports,
    store_import,
)
from models.leads import (
    PreparedLead,
    insert_leads,
    known_indexes,
    lock_identities,
    new_lead_values,
    prepare_lead,
    upsert_lead,
)
from models.orgs import default_region
from tasks.after_commit import enqueue_or_defer
from tasks.context import TaskContext, get_context
from tasks.imports.rows import RowRejected, check_row
from workers.runtime import actor

# An unfinished import no batch advanced for this long has lost its messages.
STALE_AFTER_SECONDS = 120.0
# Chunks of one import written at once (a chain of messages each).
CONCURRENT_BATCHES = 4


@actor(queue_name="imports", max_retries=20)
def import_batch(org_id: str, import_id: str) -> None:
    if process_batch(get_context(), uuid.UUID(org_id), uuid.UUID(import_id)):
        enqueue_or_defer(import_batch, org_id, import_id)


def start_import(context: TaskContext, org_id: uuid.UUID, new: NewImport) -> StoredImport:
    """Store the file once per org (same SHA-256: the earlier import) and start its batches."""
    with context.db.tenant(org_id) as session:
        cipher = context.keys.cipher(session, org_id)
        stored = store_import(session, cipher, new)
        if stored.created:
            details = {"rows": new.rows, "columns": len(new.header)}
            record_audit(
                session,
                new.actor,
                "import.created",
                org_id=org_id,
                target=str(stored.id),
                details=details,
            )
    if stored.created:
        for _ in range(min(CONCURRENT_BATCHES, len(new.chunks))):
            enqueue_or_defer(import_batch, str(org_id), str(stored.id))
    return stored


def process_batch(context: TaskContext, org_id: uuid.UUID, import_id: uuid.UUID) -> bool:
    """Write one chunk not claimed by another worker; True when chunks are left to claim."""
    now = context.clock()
    with context.db.tenant(org_id) as session:
        lead_import = session.get(LeadImport, import_id)
        if lead_import is None or lead_import.status == ImportStatus.DONE:
            return False
        chunk = claim_chunk(session, import_id)
        if chunk is None:  # every chunk written, or being written by other workers
            settle(session, import_id, None, now)
            return False
        cipher = context.keys.cipher(session, org_id)
        rows = chunk_rows(cipher, chunk)
        region = default_region(session, org_id)
        written = write_rows(session, cipher, lead_import.fields, rows, region)
        record_rejections(session, cipher, import_id, written.rejections)
        drop_chunk(session, chunk)
        return settle(session, import_id, written, now)


def settle(session: Session, import_id: uuid.UUID, written: Written | None, now: datetime) -> bool:
    """Add a batch's counts under the import's row lock (concurrent batches of one import
    queue here, each seeing the others' committed counts and chunks); `done` once no chunk is
    left. True when chunks are left."""
    lead_import = lock_import(session, import_id)
    if lead_import is None or lead_import.status == ImportStatus.DONE:
        return False
    following = first_unwritten_line(session, import_id)
    if written is not None:
        advance(lead_import, written, following or lead_import.end_line, now)
    if following is None:
        finish(lead_import, now)
    return following is not None


@dataclass
class Written:
    imported: int = 0
    updated: int = 0
    rejections: list[Rejection] = field(default_factory=list)


def write_rows(
    session: Session,
    cipher: OrgCipher,
    fields: list[str | None],
    rows: list[NumberedRow],
    region: str | None,
) -> Written:
    written = Written()
    prepared: list[PreparedLead] = []
    for line, cells in rows:
        try:
            prepared.append(prepare_lead(cipher, check_row(cells, fields, region), validated=True))
        except RowRejected as exc:
            written.rejections.append(Rejection(line, str(exc), cells))
    lock_identities(session, cipher.org_id, (v for p in prepared for v in p.indexes.values()))
    seen = known_indexes(
        session,
        [p.indexes["phone_bidx"] for p in prepared if p.indexes["phone_bidx"] is not None],
        [p.indexes["email_bidx"] for p in prepared if p.indexes["email_bidx"] is not None],
    )
    new: list[PreparedLead] = []
    existing: list[PreparedLead] = []
    for lead in prepared:
        identities = {value for value in lead.indexes.values() if value is not None}
        (existing if identities & seen else new).append(lead)
        seen |= identities
    insert_leads(session, [new_lead_values(cipher, lead) for lead in new])
    for lead in existing:  # after the inserts: a row may complete a lead an earlier row made
        upsert_lead(session, cipher, lead.fields)
    written.imported, written.updated = len(new), len(existing)
    return written


def advance(lead_import: LeadImport, written: Written, next_line: int, now: datetime) -> None:
    lead_import.status = ImportStatus.RUNNING
    lead_import.imported += written.imported
    lead_import.updated += written.updated
    lead_import.rejected += len(written.rejections)
    lead_import.next_line = next_line
    lead_import.updated_at = now


def finish(lead_import: LeadImport, now: datetime) -> None:
    lead_import.status = ImportStatus.DONE
    lead_import.next_line = lead_import.end_line
    lead_import.finished_at = lead_import.updated_at = now


def sweep_imports(context: TaskContext, older_than: float = STALE_AFTER_SECONDS) -> int:
    """Enqueue the next batch of every unfinished import whose message was lost (a broker
    outage, a worker killed before it acknowledged). Returns how many were enqueued."""
    cutoff = context.clock() - timedelta(seconds=older_than)
    with context.db.maintenance() as session:
        stale = stale_imports(session, cutoff)
    return sum(enqueue_or_defer(import_batch, str(org), str(job)) for org, job in stale)
