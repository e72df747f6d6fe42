"""Encrypted per-organisation backups: create, list, expire, and the key escrow beside them.

Everything lives in the backup store (LEADLINE_BACKUP_URL, leadline.objectstore): a directory
or an S3 bucket, shared by every host. Keys: `<org id>/<backup id>.llbk` (the bundle, see
models.bundles) and `<org id>/<backup id>.manifest.json` (org, created, expires, sha256, key
version, the wrapped bundle key). The bundle key is wrapped by the org's current data key, so
it dies with the org's keys. `key-escrow.json` holds every live org's data keys wrapped by the
master key (models.key_escrow), so the bundles outlive the database but not the org's
deletion. `<org id>/erasures/<entry id>.json` is the erasure journal, one object per erasure.
Deletions (expiry, an org's deletion) are checked afterwards: what is still stored is reported
and its row is not marked deleted.
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from pathlib import PurePosixPath
from typing import IO, NotRequired, TypedDict, cast

from sqlalchemy import Table, exists, func, select, text
from sqlalchemy.orm import Session

from leadline.errors import CryptoError, NotFoundError
from leadline.jsondata import JsonObject
from leadline.logging import get_logger
from leadline.objectstore import ObjectNotFound, ObjectStore, StorageError
from leadline.progress import ProgressCallback
from models.audit import record_audit
from models.bundles import FORMAT, BundleWriter, Row, encode_row, read_records
from models.crypto import OrgCipher, new_key
from models.key_escrow import (
    ESCROW_KEY,
    Escrow,
    EscrowedKey,
    EscrowError,
    read_escrow,
    rewrap,
    wrap_keys,
    write_escrow,
)
from models.keys import load_cipher, org_data_keys
from models.retention import Backup, ErasureTombstone, app_can_read, backup_tables
from models.tables import Organization, OrgKey
from tasks.context import TaskContext

log = get_logger(__name__)
TABLE = "backups"
KEY_COLUMN = "bundle_key"
RECENT_BACKUP = timedelta(hours=12)
# Serialises escrow rewrites (backups, deletions) across processes.
ESCROW_LOCK = 0x4C4C_4B45
ERASURE_JOURNAL = "erasures"
# Written by releases before the backup store: one appended line per erasure.
LEGACY_JOURNAL = "erasures.jsonl"
JOURNAL_TABLE, JOURNAL_COLUMN = "erasure_tombstones", "journal"
BUNDLE_SUFFIX, MANIFEST_SUFFIX = ".llbk", ".manifest.json"


class OrganizationRecord(TypedDict):
    """The organisation row, in a bundle's header."""

    name: str
    status: str
    created_at: str
    deletion_due_at: str | None
    default_region: str | None
    quiet_hours_start: str | None  # bundles of older releases lack these two
    quiet_hours_end: str | None
    email_from: str | None  # bundles of older releases lack it too


class BundleHeader(TypedDict):
    format: int
    org_id: str
    created_at: str
    organization: OrganizationRecord


class Manifest(TypedDict):
    format: int
    backup_id: str
    org_id: str
    created_at: str
    expires_at: str
    sha256: str
    size_bytes: NotRequired[int]  # manifests of older releases lack it
    key_version: int
    rows: int
    bundle: str  # the bundle's name, beside the manifest
    wrapped_key: str


class JournalEntry(TypedDict):
    """One object of the erasure journal."""

    id: str
    sealed: str  # a JournalTombstone, sealed under the org's data key


class JournalTombstone(TypedDict):
    columns: dict[str, str]  # blind index column to base64 value
    created_at: str


@dataclass(frozen=True)
class BackupKeys:
    bundle: str
    manifest: str


def backup_keys(org_id: uuid.UUID, backup_id: uuid.UUID) -> BackupKeys:
    return BackupKeys(
        f"{org_id}/{backup_id}{BUNDLE_SUFFIX}", f"{org_id}/{backup_id}{MANIFEST_SUFFIX}"
    )


def sibling(key: str, name: str) -> str:
    """The key of `name` beside `key` (a manifest's bundle)."""
    return PurePosixPath(key).with_name(PurePosixPath(name).name).as_posix()


def create_backups(
    context: TaskContext, now: datetime, on_progress: ProgressCallback | None = None
) -> dict[str, int]:
    """A bundle for every live org without one in the last 12 hours (safe to re-run).

    `on_progress(orgs_done, orgs_total)` after each organisation."""
    created = 0
    # Before the bundles (keys they need are escrowed even if the run dies) and after
    # (a data key added meanwhile).
    update_key_escrow(context, now)
    due = orgs_needing_backup(context, now - RECENT_BACKUP)
    if on_progress:
        on_progress(0, len(due))
    for org_id in due:
        create_backup(context, org_id, now, actor="system", escrow=False)
        created += 1
        if on_progress:
            on_progress(created, len(due))
    escrowed = update_key_escrow(context, now)
    return {"created": created, "escrowed_orgs": escrowed}


def orgs_needing_backup(context: TaskContext, since: datetime) -> list[uuid.UUID]:
    recent = exists().where(
        Backup.org_id == Organization.id, Backup.created_at >= since, Backup.status == "available"
    )
    has_keys = exists().where(OrgKey.org_id == Organization.id)
    query = select(Organization.id).where(Organization.status != "deleting", has_keys, ~recent)
    with context.db.maintenance() as session:
        return list(session.scalars(query.order_by(Organization.id)))


def create_backup(
    context: TaskContext,
    org_id: uuid.UUID,
    now: datetime,
    actor: str = "cli",
    escrow: bool = True,
    on_progress: ProgressCallback | None = None,
) -> Backup:
    """Snapshot every tenant table of the org (keys excluded) into an encrypted bundle, then
    rewrite the key escrow (unless the caller does it once for many backups).

    `on_progress(rows_done, rows_total)` is called as rows are written."""
    backup_id = uuid.uuid4()
    keys = backup_keys(org_id, backup_id)
    store = context.backups
    expires = now + timedelta(days=context.settings.leadline_backup_retention_days)
    with context.db.tenant_snapshot(org_id) as session:
        cipher = context.keys.cipher(session, org_id)
        key = new_key()
        with store.writer(keys.bundle) as sink:
            writer = write_bundle(session, org_id, sink, key, backup_id, now, on_progress)
        backup = Backup(
            id=backup_id,
            org_id=org_id,
            path=keys.bundle,
            sha256=writer.sha256.hexdigest(),
            key_version=cipher.current_version,
            size_bytes=writer.size,
            row_count=writer.records - 1,
            status="available",
            created_at=now,
            expires_at=expires,
        )
        wrapped = cipher.encrypt(key, TABLE, KEY_COLUMN, backup_id)
        store.put(keys.manifest, manifest_document(backup, wrapped))
        session.add(backup)
        record_audit(
            session,
            actor,
            "backup.created",
            org_id=org_id,
            target=str(backup_id),
            details={"rows": backup.row_count, "bytes": backup.size_bytes},
        )
    if escrow:
        update_key_escrow(context, now)
    return backup


def write_bundle(
    session: Session,
    org_id: uuid.UUID,
    sink: IO[bytes],
    key: bytes,
    backup_id: uuid.UUID,
    now: datetime,
    on_progress: ProgressCallback | None = None,
) -> BundleWriter:
    # maintenance-only (operational) tables are not tenant content
    tables = [table for table in bundled_tables() if app_can_read(session, table)]
    report = on_progress or (lambda _done, _total: None)
    total = sum(count_rows(session, table, org_id) for table in tables) if on_progress else None
    report(0, total)
    writer = BundleWriter(sink, key, backup_id)
    header: BundleHeader = {
        "format": FORMAT,
        "org_id": str(org_id),
        "created_at": now.isoformat(),
        "organization": organization_record(session, org_id),
    }
    writer.write_record(header)
    for table in tables:
        for row in table_rows(session, table, org_id):
            writer.write_record({"table": table.name, "row": encode_row(row)})
            report(writer.records - 1, total)
    writer.close()
    return writer


def bundled_tables() -> list[Table]:
    """Tenant data, and the erasure tombstones (blind indexes only): a restore into an empty
    database must still know who was erased."""
    tombstones: Table = ErasureTombstone.__table__  # type: ignore[assignment]
    return [*backup_tables(), tombstones]


def organization_record(session: Session, org_id: uuid.UUID) -> OrganizationRecord:
    """What a restore into an empty database needs to recreate the organisation row."""
    org = session.get(Organization, org_id)
    if org is None:
        raise NotFoundError("organisation not found")
    return {
        "name": org.name,
        "status": org.status,
        "created_at": org.created_at.isoformat(),
        "deletion_due_at": org.deletion_due_at.isoformat() if org.deletion_due_at else None,
        "default_region": org.default_region,
        "email_from": org.email_from,
        "quiet_hours_start": _clock_time(org.quiet_hours_start),
        "quiet_hours_end": _clock_time(org.quiet_hours_end),
    }


def _clock_time(value: time | None) -> str | None:
    return value.isoformat() if value is not None else None


def count_rows(session: Session, table: Table, org_id: uuid.UUID) -> int:
    query = select(func.count()).select_from(table).where(table.c.org_id == org_id)
    return int(session.scalar(query) or 0)


def table_rows(session: Session, table: Table, org_id: uuid.UUID) -> Iterator[Row]:
    query = select(table).where(table.c.org_id == org_id).execution_options(yield_per=1000)
    for row in session.execute(query):
        yield dict(row._mapping)


def manifest_document(backup: Backup, wrapped_key: bytes) -> bytes:
    manifest: Manifest = {
        "format": FORMAT,
        "backup_id": str(backup.id),
        "org_id": str(backup.org_id),
        "created_at": backup.created_at.isoformat(),
        "expires_at": backup.expires_at.isoformat(),
        "sha256": backup.sha256,
        "size_bytes": backup.size_bytes,
        "key_version": backup.key_version,
        "rows": backup.row_count,
        "bundle": PurePosixPath(backup.path).name,
        "wrapped_key": base64.b64encode(wrapped_key).decode(),
    }
    return json.dumps(manifest, indent=2).encode()


def read_manifest(store: ObjectStore, key: str) -> Manifest:
    """The manifest as written; a field that is missing or of another type fails where it is
    read (KeyError, TypeError, ValueError)."""
    try:
        return cast(Manifest, json.loads(store.get(key)))
    except (ObjectNotFound, ValueError):
        raise NotFoundError("backup manifest is missing or unreadable") from None


def open_bundle(
    context: TaskContext, manifest_key: str, store: ObjectStore | None = None
) -> Iterator[object]:
    """The records of a bundle (header first), read with the org's live data key, so after
    crypto-shredding this raises KeyNotFoundError or CryptoError."""
    store = store or context.backups
    org_id = uuid.UUID(read_manifest(store, manifest_key)["org_id"])
    with context.db.tenant(org_id) as session:
        # Never a cached key: after shredding, no code path may still hold the DEK.
        cipher = load_cipher(session, context.keyring, org_id)
    yield from bundle_records(store, manifest_key, cipher)


def bundle_records(store: ObjectStore, manifest_key: str, cipher: OrgCipher) -> Iterator[object]:
    """The records of a bundle (header first), with the org's data keys from wherever they
    came (the database, or the key escrow after the database was lost)."""
    manifest = read_manifest(store, manifest_key)
    org_id, backup_id = uuid.UUID(manifest["org_id"]), uuid.UUID(manifest["backup_id"])
    if org_id != cipher.org_id:
        raise CryptoError("backup manifest names another organisation")
    try:
        with store.reader(sibling(manifest_key, manifest["bundle"])) as source:
            # Checked before anything is decrypted; the reader is a local copy, so the
            # bytes checked are the bytes read.
            if stream_sha256(source) != manifest["sha256"]:
                raise CryptoError("backup bundle does not match its manifest checksum")
            source.seek(0)
            wrapped = base64.b64decode(manifest["wrapped_key"])
            key = cipher.decrypt(wrapped, TABLE, KEY_COLUMN, backup_id)
            yield from read_records(source, key, backup_id)
    except ObjectNotFound:
        raise NotFoundError("backup bundle is missing") from None


def stream_sha256(source: IO[bytes]) -> str:
    digest = hashlib.sha256()
    for block in iter(lambda: source.read(1 << 20), b""):
        digest.update(block)
    return digest.hexdigest()


def expire_backups(context: TaskContext, now: datetime) -> dict[str, int]:
    """Expired bundles and manifests leave the store, in short batches. A row is marked
    `deleted` only once the store holds neither object any more; one whose objects stay is
    reported and left `available` (tried again next run), one whose objects were never found
    is marked `missing`, since nothing here can tell that they are gone."""
    batch = context.settings.leadline_retention_batch_size
    counts = {"expired": 0, "not_deleted": 0, "missing": 0}
    kept: set[uuid.UUID] = set()
    while True:
        query = (
            select(Backup)
            .where(Backup.status == "available", Backup.expires_at <= now, Backup.id.not_in(kept))
            .order_by(Backup.expires_at)
            .limit(batch)
            .with_for_update(skip_locked=True)
        )
        with context.db.maintenance() as session:
            backups = session.scalars(query).all()
            for backup in backups:
                outcome = expire_backup(context.backups, session, backup, now)
                counts[outcome] += 1
                if outcome == "not_deleted":
                    kept.add(backup.id)
        if len(backups) < batch:
            return counts


def expire_backup(store: ObjectStore, session: Session, backup: Backup, now: datetime) -> str:
    """One expired backup: `expired` (gone from the store), `not_deleted` or `missing`."""
    keys = backup_keys(backup.org_id, backup.id)
    objects = [keys.bundle, keys.manifest]
    details: JsonObject = {"store": store.url}
    if not any(still_stored(store, key) for key in objects):
        log.warning("expired backup not in the store", backup_id=str(backup.id), store=store.url)
        outcome = "missing"
        backup.status = outcome
    elif remaining := delete_verified(store, objects):
        log.error("expired backup still stored", backup_id=str(backup.id), objects=len(remaining))
        outcome = "not_deleted"
        details["still_stored"] = remaining
    else:
        outcome = "expired"
        backup.status, backup.deleted_at = "deleted", now
    action = f"backup.{outcome}"
    record_audit(
        session, "system", action, org_id=backup.org_id, target=str(backup.id), details=details
    )
    return outcome


def delete_verified(store: ObjectStore, keys: Iterable[str]) -> list[str]:
    """Delete every object, then look again: the keys still stored (none when it took)."""
    keys = list(keys)
    for key in keys:
        try:
            store.delete(key)
        except StorageError as exc:
            log.error("backup object not deleted", store=store.url, reason=str(exc))
    return [key for key in keys if still_stored(store, key)]


def still_stored(store: ObjectStore, key: str) -> bool:
    """Whether the store still holds the object; one that cannot be checked counts as held."""
    try:
        return store.exists(key)
    except StorageError as exc:
        log.error("backup object could not be checked", store=store.url, reason=str(exc))
        return True


def remove_org_backups(context: TaskContext, org_id: uuid.UUID) -> int:
    """Every object of the org (bundles, manifests, journal) leaves the store, checked.
    Raises StorageError when some stay: the deletion is resumed by the next run."""
    store = context.backups
    prefix = f"{org_id}/"
    keys = store.list(prefix)
    remaining = set(delete_verified(store, keys)) | set(store.list(prefix))
    if remaining:
        raise StorageError(
            f"{len(remaining)} backup objects of organisation {org_id} are still in "
            f"{store.url} after deleting them (an object lock or the credentials' permissions "
            "keep them; the next deletion run tries again)"
        )
    return sum(1 for key in keys if key.endswith(BUNDLE_SUFFIX))


def list_backups(context: TaskContext, org_id: uuid.UUID | None = None) -> list[Backup]:
    query = select(Backup).order_by(Backup.created_at.desc())
    if org_id is not None:
        query = query.where(Backup.org_id == org_id)
    with context.db.maintenance() as session:
        return list(session.scalars(query))


def find_backup(context: TaskContext, backup_id: uuid.UUID) -> Backup:
    with context.db.maintenance() as session:
        backup = session.get(Backup, backup_id)
    if backup is None or backup.status != "available":
        raise NotFoundError("no available backup with that id (`leadline backup list` shows them)")
    return backup


def update_key_escrow(context: TaskContext, now: datetime, forget: uuid.UUID | None = None) -> int:
    """Rewrite the key escrow from the database: every org's current data keys, under the
    primary master key. Entries of orgs the database does not know are kept (after a lost
    database they are the only copy), as are those of orgs whose keys are under a master key
    this process lacks; an org in the database without keys (being deleted) and `forget` leave
    it. Returns the number of orgs escrowed."""
    store = context.backups
    with context.db.maintenance() as session:
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ESCROW_LOCK})
        live, unreadable = org_data_keys(session, context.keyring)
        if unreadable:
            log.warning("escrow entries kept: master key not configured", orgs=len(unreadable))
        # Entries rebuilt from the database (or dropped); the others are carried over.
        replaced = (set(session.scalars(select(Organization.id))) - unreadable) | {forget}
        escrow = {
            org_id: carried_entry(context, org_id, keys)
            for org_id, keys in existing_escrow(store).items()
            if org_id not in replaced
        }
        escrow.update(
            {
                org_id: wrap_keys(context.keyring, org_id, deks)
                for org_id, deks in live.items()
                if org_id != forget
            }
        )
        write_escrow(store, escrow, now)
        drop_escrow_history(store, strict=forget is not None)
    return len(escrow)


def drop_escrow_history(store: ObjectStore, strict: bool) -> None:
    """On a versioned bucket every rewrite leaves the previous escrow behind as a version, and
    one written before a deletion still holds the deleted org's keys: only the current one is
    kept. `strict` (a deletion): a refusal raises, so the deletion stays unfinished."""
    try:
        store.drop_history(ESCROW_KEY)
    except StorageError as exc:
        if strict:
            raise
        log.error("earlier key escrow versions kept", store=store.url, reason=str(exc))


def forget_in_key_escrow(context: TaskContext, org_id: uuid.UUID, now: datetime) -> bool:
    """Remove a deleted org's keys from the escrow (crypto-shredding of every backup)."""
    if not context.backups.exists(ESCROW_KEY):
        return False
    update_key_escrow(context, now, forget=org_id)
    return True


def carried_entry(
    context: TaskContext, org_id: uuid.UUID, keys: tuple[EscrowedKey, ...]
) -> tuple[EscrowedKey, ...]:
    """An entry of an org the database does not know, moved under the primary master key if
    it opens; otherwise kept exactly as it is (a restore will report it)."""
    try:
        return rewrap(context.keyring, org_id, keys)
    except EscrowError:
        return keys


def existing_escrow(store: ObjectStore) -> Escrow:
    try:
        return read_escrow(store)
    except NotFoundError:
        return {}
    except EscrowError:
        # Rebuilt from the database; a damaged copy is not kept, it may hold shredded keys.
        log.warning("key escrow unreadable; rebuilt from the database")
        return {}


def journal_erasure(
    context: TaskContext, org_id: uuid.UUID, indexes: dict[str, bytes], at: datetime
) -> None:
    """Store a tombstone (blind indexes, sealed under the org's data key) beside the org's
    backups the moment a person is erased: a database lost before the next backup would
    otherwise forget the erasure, and `restore --from` would bring the person back. One object
    per erasure, since objects in a bucket cannot be appended to."""
    entry_id = uuid.uuid4()
    with context.db.tenant(org_id) as session:
        cipher = context.keys.cipher(session, org_id)
    columns = {c: base64.b64encode(v).decode() for c, v in indexes.items()}
    tombstone: JournalTombstone = {"columns": columns, "created_at": at.isoformat()}
    sealed = cipher.encrypt(json.dumps(tombstone).encode(), JOURNAL_TABLE, JOURNAL_COLUMN, entry_id)
    entry: JournalEntry = {"id": str(entry_id), "sealed": base64.b64encode(sealed).decode()}
    try:
        context.backups.put(journal_key(org_id, entry_id), json.dumps(entry).encode())
    except (StorageError, OSError) as exc:
        # The erasure itself is committed; the next backup carries its tombstone anyway.
        log.error("erasure journal not written", error=type(exc).__name__)


def journal_key(org_id: uuid.UUID, entry_id: uuid.UUID) -> str:
    return f"{org_id}/{ERASURE_JOURNAL}/{entry_id}.json"


def read_erasure_journal(store: ObjectStore, org_id: uuid.UUID, cipher: OrgCipher) -> list[Row]:
    """The journal's tombstones as `erasure_tombstones` column values. Raises CryptoError (or
    ValueError) if an entry was altered. In a legacy `erasures.jsonl`, a torn last line (a
    crash while appending) is skipped."""
    entries: list[JournalEntry] = [
        json.loads(store.get(key)) for key in store.list(f"{org_id}/{ERASURE_JOURNAL}/")
    ]
    try:
        legacy = store.get(f"{org_id}/{LEGACY_JOURNAL}")
    except ObjectNotFound:
        legacy = b""
    for line in legacy.splitlines():
        try:
            entries.append(json.loads(line))
        except ValueError:
            continue
    return [open_journal_entry(cipher, entry) for entry in entries]


def open_journal_entry(cipher: OrgCipher, entry: JournalEntry) -> Row:
    sealed = base64.b64decode(entry["sealed"])
    opened = cipher.decrypt(sealed, JOURNAL_TABLE, JOURNAL_COLUMN, entry["id"])
    tombstone = cast(JournalTombstone, json.loads(opened))
    columns = {c: base64.b64decode(v) for c, v in tombstone["columns"].items()}
    return {**columns, "created_at": datetime.fromisoformat(tombstone["created_at"])}
