"""Restoring backups: one bundle into the live database, or every organisation found in a backup
store (a directory or an s3:// URL) into an empty database once the database is lost.

A bundle is read twice. The first pass decrypts all of it, so a damaged or truncated bundle
fails before anything is written, and decides who stays erased: a lead that existed when a
person was erased and shares an identity with their tombstone (the database's and the bundle's
own) is not restored. The second pass inserts, in one transaction with the audit entry:
rows of erased leads, rows tied to them (`lead_id`) and rows whose foreign key points at a
withheld row (webhook attempts of a withheld delivery) are left out, and inbound payloads that
mention an erased person come back without the payload. Rows go in with ON CONFLICT DO NOTHING
in the bundle's order (parents before children), so restoring twice, or over live data, adds
only what is missing, and a failure anywhere leaves the database as it was.
"""

from __future__ import annotations

import uuid
import zlib
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, time
from pathlib import PurePosixPath
from typing import Literal, NotRequired, TypedDict

from sqlalchemy import Integer, Table, func, literal_column, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from leadline.errors import ConfigError, CryptoError, LeadlineError, NotFoundError
from leadline.jsondata import JsonObject, as_object, text_of
from leadline.objectstore import ObjectStore, file_path
from leadline.progress import ProgressCallback
from models.audit import record_audit
from models.base import Base
from models.bundles import FORMAT, Row, column_value, decode_row
from models.crypto import OrgCipher
from models.key_escrow import escrow_cipher, read_escrow
from models.keys import install_data_keys, load_cipher
from models.migrate import is_current
from models.retention import Backup, ErasureTombstone
from models.tables import Organization, OrgStatus
from tasks.backups import (
    BUNDLE_SUFFIX,
    MANIFEST_SUFFIX,
    backup_keys,
    bundle_records,
    find_backup,
    read_erasure_journal,
    read_manifest,
    sibling,
)
from tasks.context import TaskContext
from tasks.erasure import INDEX_COLUMNS, Tombstone, event_identities, load_tombstones

LEADS = "leads"
INBOUND = "inbound_events"
TOMBSTONES = "erasure_tombstones"
RESTORE_LOCK = 0x4C4C_5253


class RestoreSummary(TypedDict):
    backup_id: str
    org_id: str
    inserted: dict[str, int]  # rows per table
    withheld: dict[str, int]
    erased_again: int


class OrgRestored(RestoreSummary):
    """An organisation of a backup store, restored."""

    journal_tombstones: int
    registered_backups: int
    status: Literal["restored"]


class OrgNotRestored(TypedDict):
    org_id: str
    status: Literal["unreadable", "no_backup"]
    backups: int
    reason: NotRequired[str]


class StoreRestoreSummary(TypedDict):
    directory: str
    store: str
    orgs: list[OrgRestored | OrgNotRestored]
    restored: int
    not_restored: int


@dataclass
class BundlePlan:
    """What the first pass learned: the bundle is whole, and whose rows stay out."""

    store: ObjectStore
    manifest: str  # its key in the store
    backup_id: uuid.UUID
    org_id: uuid.UUID
    header: JsonObject
    tombstones: list[Tombstone]  # the known ones and the bundle's
    bundled: list[Tombstone]
    erased_leads: set[uuid.UUID]
    records: int


def plan_bundle(
    store: ObjectStore, manifest: str, cipher: OrgCipher, known: list[Tombstone]
) -> BundlePlan:
    """Read the whole bundle once. Raises CryptoError if any of it is damaged."""
    backup_id = uuid.UUID(read_manifest(store, manifest)["backup_id"])
    leads: list[Row] = []
    bundled: list[Tombstone] = []
    records = checked_records(store, manifest, cipher)
    header = next(records, None)
    if header is None or header.get("format") != FORMAT:
        raise CryptoError(f"backup bundle {backup_id} has no valid header")
    if header.get("org_id") != str(cipher.org_id):
        raise CryptoError(f"backup bundle {backup_id} belongs to another organisation")
    count = 0
    for record in records:
        count += 1
        table, encoded = row_record(record)
        if table == LEADS:
            leads.append(identity_row(LEADS, encoded, ("id", "created_at")))
        elif table == TOMBSTONES:
            bundled.append(tombstone_of(identity_row(TOMBSTONES, encoded, ("created_at",))))
    tombstones = [*known, *bundled]
    erased = {
        column_value(lead, "id", uuid.UUID)
        for lead in leads
        if any(t.covers(lead) for t in tombstones)
    }
    return BundlePlan(
        store, manifest, backup_id, cipher.org_id, header, tombstones, bundled, erased, count
    )


def checked_records(store: ObjectStore, manifest: str, cipher: OrgCipher) -> Iterator[JsonObject]:
    """Records, with any damage (a failed tag, or bytes that are not records) reported as one
    clear error naming the backup."""
    try:
        for record in bundle_records(store, manifest, cipher):
            if not isinstance(record, dict):
                raise ValueError("not a record")
            yield record
    except (CryptoError, NotFoundError, ValueError, KeyError, TypeError, zlib.error):
        raise CryptoError(
            f"backup {PurePosixPath(manifest).name.split('.')[0]} of organisation "
            f"{cipher.org_id} is missing, "
            "corrupt or does not open with the organisation's data keys (restore an older "
            "backup; with --from, move its two objects out of the store)"
        ) from None


def row_record(record: JsonObject) -> tuple[str, JsonObject]:
    """A row record's table name and encoded row (the bundle's header is not one)."""
    table, row = record.get("table"), record.get("row")
    if not isinstance(table, str) or not isinstance(row, dict):
        raise CryptoError("backup bundle holds a record that is not a row")
    return table, row


def identity_row(table_name: str, encoded: JsonObject, extra: tuple[str, ...]) -> Row:
    table = Base.metadata.tables[table_name]
    wanted = {name: encoded.get(name) for name in (*INDEX_COLUMNS, *extra) if name in table.c}
    return decode_row(table, wanted)


def tombstone_of(row: Mapping[str, object]) -> Tombstone:
    indexes = frozenset(column_value(row, c, bytes) for c in INDEX_COLUMNS if row.get(c))
    return Tombstone(indexes, column_value(row, "created_at", datetime))


@dataclass
class Restorer:
    """Second pass: inserts a planned bundle's rows through one session (one transaction)."""

    session: Session
    plan: BundlePlan
    cipher: OrgCipher
    batch: int
    on_table: Callable[[], None] = lambda: None
    inserted: Counter[str] = field(default_factory=Counter)
    withheld: Counter[str] = field(default_factory=Counter)
    withheld_ids: dict[str, set[object]] = field(default_factory=dict)
    _table: Table | None = None
    _rows: list[Row] = field(default_factory=list)

    def add(self, table_name: str, encoded: JsonObject) -> None:
        table = Base.metadata.tables.get(table_name)
        if table is None or "org_id" not in table.c:
            self.withheld["unknown_table"] += 1
            return
        if table is not self._table:
            self.flush()
            self._table = table
            self.on_table()
        row = decode_row(table, encoded)
        if row.get("org_id") != self.plan.org_id:
            raise CryptoError("backup bundle holds rows of another organisation")
        if self.keeps(table, row):
            self._rows.append(row)
        else:
            self.withheld[table.name] += 1
            self.withheld_ids.setdefault(table.name, set()).add(row.get("id"))
        if len(self._rows) >= self.batch:
            self.flush()

    def keeps(self, table: Table, row: Row) -> bool:
        erased = self.plan.erased_leads
        if table.name == LEADS and row["id"] in erased:
            return False
        if "lead_id" in table.c and row.get("lead_id") in erased:
            return False
        for key in table.foreign_keys:
            if row.get(key.parent.name) in self.withheld_ids.get(key.column.table.name, ()):
                return False
        if table.name == INBOUND:
            self.scrub_if_erased(row)
        return True

    def scrub_if_erased(self, event: Row) -> None:
        payload = event.get("payload_ct")
        ciphertext = payload if isinstance(payload, bytes) else None  # LargeBinary or NULL
        identities = event_identities(self.cipher, column_value(event, "id", uuid.UUID), ciphertext)
        received_at = column_value(event, "received_at", datetime)
        for tombstone in self.plan.tombstones:
            if received_at <= tombstone.created_at and identities & tombstone.indexes:
                event["payload_ct"] = None
                if "request_fingerprint" in event:
                    event["request_fingerprint"] = None  # a keyed hash of the same person
                event["status"] = "erased" if event["status"] == "pending" else event["status"]
                self.withheld["inbound_payloads"] += 1
                return

    def flush(self) -> None:
        if self._table is None or not self._rows:
            return
        statement = (
            insert(self._table)
            .values(self._rows)
            .on_conflict_do_nothing()
            .returning(literal_column("1", Integer))
        )
        self.inserted[self._table.name] += len(self.session.execute(statement).all())
        self._rows = []

    def run(self) -> RestoreSummary:
        records = checked_records(self.plan.store, self.plan.manifest, self.cipher)
        next(records)  # the header, checked by the first pass
        for record in records:
            self.add(*row_record(record))
        self.flush()
        return {
            "backup_id": str(self.plan.backup_id),
            "org_id": str(self.plan.org_id),
            "inserted": {table: n for table, n in self.inserted.items() if n},
            "withheld": dict(self.withheld),
            "erased_again": len(self.plan.erased_leads),
        }


def audit_restore(session: Session, summary: RestoreSummary, now: datetime, **extra: str) -> None:
    details: JsonObject = {
        "inserted": summary["inserted"],
        "withheld": summary["withheld"],
        "erased_again": summary["erased_again"],
    }
    record_audit(
        session,
        "cli",
        "backup.restored",
        org_id=uuid.UUID(summary["org_id"]),
        target=summary["backup_id"],
        details={**details, **extra, "at": now.isoformat()},
    )


def restore_backup(
    context: TaskContext,
    backup_id: uuid.UUID,
    now: datetime,
    on_progress: ProgressCallback | None = None,
) -> RestoreSummary:
    """Re-insert a backup's rows into its live organisation, atomically and audited."""
    backup = find_backup(context, backup_id)
    manifest = backup_keys(backup.org_id, backup.id).manifest
    with context.db.tenant(backup.org_id) as session:
        cipher = load_cipher(session, context.keyring, backup.org_id)
        known = load_tombstones(session)
    plan = plan_bundle(context.backups, manifest, cipher, known)
    tables = Counter[str]()

    def table_done() -> None:
        tables["done"] += 1
        if on_progress is not None:
            on_progress(tables["done"], None)

    try:
        with context.db.tenant(backup.org_id) as session:
            batch = context.settings.leadline_retention_batch_size
            summary = Restorer(session, plan, cipher, batch, on_table=table_done).run()
            audit_restore(session, summary, now)
    except DBAPIError as exc:
        raise rolled_back(exc, f"backup {backup_id}") from None
    return summary


def rolled_back(exc: DBAPIError, what: str) -> LeadlineError:
    """The database refused a row: say which constraint, never the values (they may be PII)."""
    diag = getattr(exc.orig, "diag", None)
    constraint = getattr(diag, "constraint_name", None) or type(exc.orig).__name__
    return LeadlineError(
        f"{what} was not restored, nothing was written: the database refused a row "
        f"({constraint}) (check that the database is migrated to this release)"
    )


# --- a lost database: every organisation of a backup store -----------------------------------


@dataclass(frozen=True)
class OrgBackups:
    org_id: uuid.UUID
    manifests: list[str]  # keys, newest first
    bundles: frozenset[str]  # keys of the bundles present


@dataclass(frozen=True)
class Planned:
    """An organisation of the store, checked and ready to be written."""

    plan: BundlePlan
    backups: OrgBackups
    cipher: OrgCipher
    journal: list[Row]  # tombstones of erasures the bundle may not know yet


def restore_from_store(
    context: TaskContext,
    source: str,
    now: datetime,
    on_progress: ProgressCallback | None = None,
) -> StoreRestoreSummary:
    """Recreate every organisation of the backup store `source` (a directory, a file:// or an
    s3:// URL: a copy of LEADLINE_BACKUP_URL, or that store itself) in an empty, migrated
    database: the org row and its data keys from the key escrow, then the rows of its newest
    bundle. Everything is checked before the one transaction that writes it all."""
    store = source_store(context, source)
    require_empty_database(context)
    escrow = read_escrow(store)
    ciphers = {org_id: escrow_cipher(context.keyring, org_id, k) for org_id, k in escrow.items()}
    found = org_backups(store)
    plans: list[Planned] = []
    skipped: list[OrgNotRestored] = []
    for org in found:
        cipher = ciphers.get(org.org_id)
        if cipher is None:
            skipped.append(unreadable(org))
            continue
        journal = erasure_journal(store, org, cipher)
        plan = plan_bundle(store, org.manifests[0], cipher, [tombstone_of(row) for row in journal])
        plans.append(Planned(plan, org, cipher, journal))
    for org_id in sorted(set(ciphers) - {org.org_id for org in found}, key=str):
        skipped.append({"org_id": str(org_id), "status": "no_backup", "backups": 0})
    register = store.url == context.settings.backup_url
    try:
        restored = write_organizations(context, plans, skipped, register, now, on_progress)
    except DBAPIError as exc:
        raise rolled_back(exc, f"the backup store {store.url}") from None
    summary: StoreRestoreSummary = {
        "directory": source,
        "store": store.url,
        "orgs": [*restored, *skipped],
        "restored": len(restored),
        "not_restored": len(skipped),
    }
    return summary


def source_store(context: TaskContext, source: str) -> ObjectStore:
    """The store `--from` names. A directory must exist (an empty bucket prefix is reported
    by the missing escrow)."""
    if not source.startswith("s3://") and not file_path(source).is_dir():
        raise NotFoundError(
            f"backup directory {source} does not exist (pass the directory "
            "LEADLINE_BACKUP_DIR named, or a copy of it)"
        )
    return context.open_store(source)


def write_organizations(
    context: TaskContext,
    plans: list[Planned],
    skipped: list[OrgNotRestored],
    register: bool,
    now: datetime,
    on_progress: ProgressCallback | None,
) -> list[OrgRestored]:
    """Every planned organisation in one transaction: all of them, or none."""
    restored: list[OrgRestored] = []
    with context.db.maintenance() as session:
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": RESTORE_LOCK})
        require_no_organizations(session)  # again, under the lock: two restores at once
        for done, planned in enumerate(plans, start=1):
            plan, cipher = planned.plan, planned.cipher
            recreate_organization(session, context, plan, cipher)
            batch = context.settings.leadline_retention_batch_size
            summary = Restorer(session, plan, cipher, batch).run()
            journal = add_journal_tombstones(session, planned)
            backups = planned.backups
            registered = register_backups(session, planned.plan.store, backups) if register else 0
            audit_restore(session, summary, now, source="directory")
            restored.append(
                {
                    **summary,
                    "journal_tombstones": journal,
                    "registered_backups": registered,
                    "status": "restored",
                }
            )
            if on_progress is not None:
                on_progress(done, len(plans))
        record_audit(
            session,
            "cli",
            "backup.directory_restored",
            details={
                "restored": [r["org_id"] for r in restored],
                "not_restored": {s["org_id"]: s["status"] for s in skipped},
                "at": now.isoformat(),
            },
        )
    return restored


def erasure_journal(store: ObjectStore, org: OrgBackups, cipher: OrgCipher) -> list[Row]:
    try:
        return read_erasure_journal(store, org.org_id, cipher)
    except (CryptoError, ValueError, KeyError, TypeError):
        raise CryptoError(
            f"the erasure journal of organisation {org.org_id} was altered (restore "
            f"{org.org_id}/erasures from a copy of the backup store)"
        ) from None


def add_journal_tombstones(session: Session, planned: Planned) -> int:
    """Tombstones of erasures made after the bundle was written go back into the table."""
    present = {(t.indexes, t.created_at) for t in planned.plan.bundled}
    added = 0
    for row in planned.journal:
        tombstone = tombstone_of(row)
        if (tombstone.indexes, tombstone.created_at) in present:
            continue
        present.add((tombstone.indexes, tombstone.created_at))
        session.add(ErasureTombstone(org_id=planned.plan.org_id, **row))
        added += 1
    session.flush()
    return added


def require_empty_database(context: TaskContext) -> None:
    if not is_current(context.db.owner_engine):
        raise ConfigError("the database is not migrated (run leadline migrate first)")
    with context.db.maintenance() as session:
        require_no_organizations(session)


def require_no_organizations(session: Session) -> None:
    orgs = session.scalar(select(func.count()).select_from(Organization)) or 0
    if orgs:
        raise ConfigError(
            f"the target database is not empty: it has {orgs} organisations (restore --from "
            "needs an empty, migrated database; on a live one use backup restore ID)"
        )


def org_backups(store: ObjectStore) -> list[OrgBackups]:
    """Every organisation with at least one manifest in the store, newest manifest first."""
    keys: dict[uuid.UUID, list[str]] = {}
    for key in store.list():
        first, _, rest = key.partition("/")
        org_id = uuid_or_none(first)
        if org_id is not None and rest and "/" not in rest:
            keys.setdefault(org_id, []).append(key)
    found = []
    for org_id, org_keys in sorted(keys.items(), key=lambda item: str(item[0])):
        manifests = [
            (manifest_created(store, key, org_id), key)
            for key in org_keys
            if key.endswith(MANIFEST_SUFFIX)
        ]
        if manifests:
            bundles = frozenset(key for key in org_keys if key.endswith(BUNDLE_SUFFIX))
            newest_first = [key for _, key in sorted(manifests, reverse=True)]
            found.append(OrgBackups(org_id, newest_first, bundles))
    return found


def manifest_created(store: ObjectStore, key: str, org_id: uuid.UUID) -> datetime:
    try:
        manifest = read_manifest(store, key)
        if manifest["org_id"] != str(org_id):
            raise ValueError("manifest of another organisation")
        return datetime.fromisoformat(manifest["created_at"])
    except (NotFoundError, ValueError, KeyError, TypeError):
        raise CryptoError(
            f"backup manifest {store.location(key)} is corrupt (move it and its bundle out of "
            "the store to restore from an older backup)"
        ) from None


def uuid_or_none(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def unreadable(org: OrgBackups) -> OrgNotRestored:
    return {
        "org_id": str(org.org_id),
        "status": "unreadable",
        "backups": len(org.manifests),
        "reason": "no data key in the key escrow (deleted organisation: crypto-shredded)",
    }


def recreate_organization(
    session: Session, context: TaskContext, plan: BundlePlan, cipher: OrgCipher
) -> None:
    saved = as_object(plan.header.get("organization"))
    org = Organization(id=plan.org_id, name=text_of(saved, "name") or f"restored {plan.org_id}")
    org.status = text_of(saved, "status") or OrgStatus.ACTIVE
    org.default_region = text_of(saved, "default_region")
    org.email_from = text_of(saved, "email_from")
    quiet_start, quiet_end = text_of(saved, "quiet_hours_start"), text_of(saved, "quiet_hours_end")
    if quiet_start and quiet_end:
        org.quiet_hours_start = time.fromisoformat(quiet_start)
        org.quiet_hours_end = time.fromisoformat(quiet_end)
    if created := text_of(saved, "created_at"):
        org.created_at = datetime.fromisoformat(created)
    if deletion_due := text_of(saved, "deletion_due_at"):
        org.deletion_due_at = datetime.fromisoformat(deletion_due)
    session.add(org)
    session.flush()
    install_data_keys(session, context.keyring, plan.org_id, cipher.deks)


def register_backups(session: Session, store: ObjectStore, org: OrgBackups) -> int:
    """The org's bundles go back into the `backups` table, so they expire on time again."""
    registered = 0
    for key in org.manifests:
        manifest = read_manifest(store, key)
        bundle = sibling(key, manifest["bundle"])
        if bundle not in org.bundles:
            continue
        session.add(
            Backup(
                id=uuid.UUID(manifest["backup_id"]),
                org_id=org.org_id,
                path=bundle,
                sha256=manifest["sha256"],
                key_version=manifest["key_version"],
                size_bytes=manifest.get("size_bytes") or stored_size(store, bundle),
                row_count=manifest["rows"],
                status="available",
                created_at=datetime.fromisoformat(manifest["created_at"]),
                expires_at=datetime.fromisoformat(manifest["expires_at"]),
            )
        )
        registered += 1
    session.flush()
    return registered


def stored_size(store: ObjectStore, key: str) -> int:
    """A bundle's size, for manifests written before they recorded it."""
    with store.reader(key) as source:
        return source.seek(0, 2)


def describe(summary: StoreRestoreSummary) -> str:
    """One line per organisation, for the CLI."""
    lines = []
    for org in summary["orgs"]:
        if org["status"] == "restored":
            rows = sum(org["inserted"].values())
            lines.append(
                f"org {org['org_id']}: restored {rows} rows from backup {org['backup_id']}"
                f" ({org['erased_again']} erased leads kept erased)"
            )
        elif org["status"] == "unreadable":
            lines.append(f"org {org['org_id']}: not restored, {org['reason']}")
        else:
            lines.append(f"org {org['org_id']}: not restored, no backup in the store")
    lines.append(f"{summary['restored']} organisations restored, {summary['not_restored']} not")
    return "\n".join(lines)
