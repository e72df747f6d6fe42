"""Encrypted per-organisation backups: create, list, expire, restore.

Layout: LEADLINE_BACKUP_DIR/<org id>/<backup id>.llbk (the bundle, see models.bundles) and
<backup id>.manifest.json (org, created, expires, sha256, key version, the wrapped bundle
key). The bundle key is wrapped by the org's current data key, so it dies with the org's keys.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Table, exists, func, select
from sqlalchemy.orm import Session

from leadline.commands.progress import ProgressCallback
from leadline.errors import CryptoError, NotFoundError
from models.audit import record_audit
from models.bundles import FORMAT, BundleWriter, encode_row, read_records
from models.crypto import new_key
from models.keys import load_cipher
from models.retention import Backup, app_can_read, backup_tables
from models.tables import Organization, OrgKey
from tasks.context import TaskContext

TABLE = "backups"
KEY_COLUMN = "bundle_key"
RECENT_BACKUP = timedelta(hours=12)


@dataclass(frozen=True)
class BackupFiles:
    bundle: Path
    manifest: Path


def org_backup_dir(context: TaskContext, org_id: uuid.UUID) -> Path:
    return Path(context.settings.leadline_backup_dir) / str(org_id)


def backup_files(context: TaskContext, org_id: uuid.UUID, backup_id: uuid.UUID) -> BackupFiles:
    directory = org_backup_dir(context, org_id)
    return BackupFiles(directory / f"{backup_id}.llbk", directory / f"{backup_id}.manifest.json")


def create_backups(
    context: TaskContext, now: datetime, on_progress: ProgressCallback | None = None
) -> dict[str, Any]:
    """A bundle for every live org without one in the last 12 hours (safe to re-run).

    `on_progress(orgs_done, orgs_total)` after each organisation."""
    created = 0
    due = orgs_needing_backup(context, now - RECENT_BACKUP)
    if on_progress:
        on_progress(0, len(due))
    for org_id in due:
        create_backup(context, org_id, now, actor="system")
        created += 1
        if on_progress:
            on_progress(created, len(due))
    return {"created": created}


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
    on_progress: ProgressCallback | None = None,
) -> Backup:
    """Snapshot every tenant table of the org (keys excluded) into an encrypted bundle.

    `on_progress(rows_done, rows_total)` is called as rows are written."""
    backup_id = uuid.uuid4()
    files = backup_files(context, org_id, backup_id)
    files.bundle.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    expires = now + timedelta(days=context.settings.leadline_backup_retention_days)
    with context.db.tenant_snapshot(org_id) as session:
        cipher = context.keys.cipher(session, org_id)
        key = new_key()
        writer = write_bundle(session, org_id, files.bundle, key, backup_id, now, on_progress)
        backup = Backup(
            id=backup_id,
            org_id=org_id,
            path=str(files.bundle.relative_to(context.settings.leadline_backup_dir)),
            sha256=writer.sha256.hexdigest(),
            key_version=cipher.current_version,
            size_bytes=writer.size,
            row_count=writer.records - 1,
            status="available",
            created_at=now,
            expires_at=expires,
        )
        write_manifest(files.manifest, backup, cipher.encrypt(key, TABLE, KEY_COLUMN, backup_id))
        session.add(backup)
        record_audit(
            session,
            actor,
            "backup.created",
            org_id=org_id,
            target=str(backup_id),
            details={"rows": backup.row_count, "bytes": backup.size_bytes},
        )
    return backup


def write_bundle(
    session: Session,
    org_id: uuid.UUID,
    path: Path,
    key: bytes,
    backup_id: uuid.UUID,
    now: datetime,
    on_progress: ProgressCallback | None = None,
) -> BundleWriter:
    partial = path.with_suffix(".partial")
    # maintenance-only (operational) tables are not tenant content
    tables = [table for table in backup_tables() if app_can_read(session, table)]
    report = on_progress or (lambda _done, _total: None)
    total = sum(count_rows(session, table, org_id) for table in tables) if on_progress else None
    report(0, total)
    with open_private(partial) as sink:
        writer = BundleWriter(sink, key, backup_id)
        header = {"format": FORMAT, "org_id": str(org_id), "created_at": now.isoformat()}
        writer.write_record(header)
        for table in tables:
            for row in table_rows(session, table, org_id):
                writer.write_record({"table": table.name, "row": encode_row(row)})
                report(writer.records - 1, total)
        writer.close()
        sink.flush()
        os.fsync(sink.fileno())
    partial.replace(path)
    return writer


def count_rows(session: Session, table: Table, org_id: uuid.UUID) -> int:
    query = select(func.count()).select_from(table).where(table.c.org_id == org_id)
    return int(session.scalar(query) or 0)


def table_rows(session: Session, table: Table, org_id: uuid.UUID) -> Iterator[dict[str, Any]]:
    query = select(table).where(table.c.org_id == org_id).execution_options(yield_per=1000)
    for row in session.execute(query):
        yield dict(row._mapping)


def open_private(path: Path) -> Any:
    return os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb")


def write_manifest(path: Path, backup: Backup, wrapped_key: bytes) -> None:
    manifest = {
        "format": FORMAT,
        "backup_id": str(backup.id),
        "org_id": str(backup.org_id),
        "created_at": backup.created_at.isoformat(),
        "expires_at": backup.expires_at.isoformat(),
        "sha256": backup.sha256,
        "key_version": backup.key_version,
        "rows": backup.row_count,
        "bundle": Path(backup.path).name,
        "wrapped_key": base64.b64encode(wrapped_key).decode(),
    }
    partial = path.with_suffix(".partial")
    with open_private(partial) as sink:
        sink.write(json.dumps(manifest, indent=2).encode())
    partial.replace(path)


def read_manifest(path: Path) -> dict[str, Any]:
    try:
        manifest: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        raise NotFoundError("backup manifest is missing or unreadable") from None
    return manifest


def open_bundle(context: TaskContext, manifest_path: Path) -> Iterator[dict[str, Any]]:
    """The records of a bundle (header first). The only way to read one: it needs the org's
    live data key, so after crypto-shredding this raises KeyNotFoundError or CryptoError."""
    manifest = read_manifest(manifest_path)
    org_id, backup_id = uuid.UUID(manifest["org_id"]), uuid.UUID(manifest["backup_id"])
    bundle = manifest_path.with_name(manifest["bundle"])
    if file_sha256(bundle) != manifest["sha256"]:
        raise CryptoError("backup bundle does not match its manifest checksum")
    with context.db.tenant(org_id) as session:
        # Never a cached key: after shredding, no code path may still hold the DEK.
        cipher = load_cipher(session, context.keyring, org_id)
    wrapped = base64.b64decode(manifest["wrapped_key"])
    key = cipher.decrypt(wrapped, TABLE, KEY_COLUMN, backup_id)
    with bundle.open("rb") as source:
        yield from read_records(source, key, backup_id)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    try:
        with path.open("rb") as source:
            for block in iter(lambda: source.read(1 << 20), b""):
                digest.update(block)
    except OSError:
        raise NotFoundError("backup bundle is missing") from None
    return digest.hexdigest()


def expire_backups(context: TaskContext, now: datetime) -> dict[str, Any]:
    """Bundles past their expiry leave the disk and are marked deleted, in short batches."""
    batch = context.settings.leadline_retention_batch_size
    expired = 0
    while True:
        query = (
            select(Backup)
            .where(Backup.status == "available", Backup.expires_at <= now)
            .order_by(Backup.expires_at)
            .limit(batch)
            .with_for_update(skip_locked=True)
        )
        with context.db.maintenance() as session:
            backups = session.scalars(query).all()
            for backup in backups:
                remove_backup_files(context, backup)
                backup.status, backup.deleted_at = "deleted", now
                record_audit(
                    session, "system", "backup.expired", org_id=backup.org_id, target=str(backup.id)
                )
        expired += len(backups)
        if len(backups) < batch:
            return {"expired": expired}


def remove_backup_files(context: TaskContext, backup: Backup) -> None:
    files = backup_files(context, backup.org_id, backup.id)
    for path in (files.bundle, files.manifest):
        path.unlink(missing_ok=True)


def remove_org_backups(context: TaskContext, org_id: uuid.UUID) -> int:
    directory = org_backup_dir(context, org_id)
    if not directory.exists():
        return 0
    count = sum(1 for path in directory.iterdir() if path.suffix == ".llbk")
    shutil.rmtree(directory)
    return count


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
