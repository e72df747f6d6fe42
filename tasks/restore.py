"""Restoring a backup: rows go back (idempotently), erased people stay erased.

Rows are inserted with ON CONFLICT DO NOTHING, so restoring twice, or over live data, adds
only what is missing. Before anything is inserted the org's tombstones are loaded: a lead
that existed when a person was erased and shares an identity with them is not restored, nor
is any row tied to it, and inbound payloads mentioning them come back without the payload.
"""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Table, literal_column
from sqlalchemy.dialects.postgresql import insert

from leadline.commands.progress import ProgressCallback
from leadline.errors import CryptoError
from models.audit import record_audit
from models.base import Base
from models.bundles import FORMAT, decode_row
from models.crypto import OrgCipher
from tasks.backups import backup_files, find_backup, open_bundle
from tasks.context import TaskContext
from tasks.erasure import Tombstone, event_identities, load_tombstones

LEADS = "leads"
INBOUND = "inbound_events"


@dataclass
class Restorer:
    context: TaskContext
    org_id: uuid.UUID
    tombstones: list[Tombstone]
    cipher: OrgCipher
    erased_leads: set[Any] = field(default_factory=set)
    inserted: Counter[str] = field(default_factory=Counter)
    withheld: Counter[str] = field(default_factory=Counter)
    _table: Table | None = None
    _rows: list[dict[str, Any]] = field(default_factory=list)

    def add(self, table_name: str, encoded: dict[str, Any]) -> None:
        table = Base.metadata.tables.get(table_name)
        if table is None or "org_id" not in table.c:
            self.withheld["unknown_table"] += 1
            return
        if table is not self._table:
            self.flush()
            self._table = table
        row = decode_row(table, encoded)
        if row.get("org_id") != self.org_id:
            raise CryptoError("backup bundle holds rows of another organisation")
        if self.keeps(table, row):
            self._rows.append(row)
        if len(self._rows) >= self.context.settings.leadline_retention_batch_size:
            self.flush()

    def keeps(self, table: Table, row: dict[str, Any]) -> bool:
        if table.name == LEADS and any(t.covers(row) for t in self.tombstones):
            self.erased_leads.add(row["id"])
        elif "lead_id" not in table.c or row.get("lead_id") not in self.erased_leads:
            if table.name == INBOUND:
                self.scrub_if_erased(row)
            return True
        self.withheld[table.name] += 1
        return False

    def scrub_if_erased(self, event: dict[str, Any]) -> None:
        identities = event_identities(self.cipher, event["id"], event.get("payload_ct"))
        for tombstone in self.tombstones:
            if event["received_at"] <= tombstone.created_at and identities & tombstone.indexes:
                event["payload_ct"] = None
                event["status"] = "erased" if event["status"] == "pending" else event["status"]
                self.withheld["inbound_payloads"] += 1
                return

    def flush(self) -> None:
        if self._table is None or not self._rows:
            return
        statement: Any = (
            insert(self._table)
            .values(self._rows)
            .on_conflict_do_nothing()
            .returning(literal_column("1"))
        )
        with self.context.db.tenant(self.org_id) as session:
            inserted = len(session.execute(statement).all())
        self.inserted[self._table.name] += inserted
        self._rows = []


def restore_backup(
    context: TaskContext,
    backup_id: uuid.UUID,
    now: datetime,
    on_progress: ProgressCallback | None = None,
) -> dict[str, Any]:
    """Re-insert a backup's rows into its organisation; tombstones are applied on the way.

    `on_progress(rows_read, None)` as the bundle is read (its row count is not known ahead)."""
    backup = find_backup(context, backup_id)
    records = open_bundle(context, backup_files(context, backup.org_id, backup.id).manifest)
    header = next(records)
    if header.get("format") != FORMAT or header.get("org_id") != str(backup.org_id):
        raise CryptoError("backup bundle header does not match its record")
    with context.db.tenant(backup.org_id) as session:
        tombstones = load_tombstones(session)
        cipher = context.keys.cipher(session, backup.org_id)
    restorer = Restorer(context, backup.org_id, tombstones, cipher)
    for read, record in enumerate(records, start=1):
        restorer.add(record["table"], record["row"])
        if on_progress:
            on_progress(read, None)
    restorer.flush()
    summary = {
        "backup_id": str(backup.id),
        "org_id": str(backup.org_id),
        "inserted": dict(restorer.inserted),
        "withheld": dict(restorer.withheld),
        "erased_again": len(restorer.erased_leads),
    }
    with context.db.tenant(backup.org_id) as session:
        details = {k: summary[k] for k in ("inserted", "withheld", "erased_again")}
        record_audit(
            session,
            "cli",
            "backup.restored",
            org_id=backup.org_id,
            target=str(backup.id),
            details={**details, "at": now.isoformat()},
        )
    return summary
