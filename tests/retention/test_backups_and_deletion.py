"""Backups expire on time; a cancelled org is gone, crypto-shredded, after its grace period."""

from __future__ import annotations

import json
import shutil
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Table, select

from intake.inbox import store_inbound_event
from leadline.errors import CryptoError
from leadline.objectstore import FileStore
from models.orgs import create_organization
from models.retention import Backup
from models.tables import AuditEntry, Organization
from tasks.backups import backup_keys, create_backup, expire_backups, open_bundle
from tasks.context import TaskContext
from tasks.deletion import delete_organization, process_deletions
from tests.support.retention import add_lead, add_note, org_row_counts
from tests.support.services import MakeOrg

pytestmark = pytest.mark.integration

NAME = "Grace Deletable"


def stored(context: TaskContext, key: str) -> Path:
    """Where the (directory) backup store keeps an object."""
    return Path(context.settings.leadline_backup_dir) / key


def populate(context: TaskContext, org_id: uuid.UUID, notes: Table) -> None:
    lead = add_lead(context, org_id, name=NAME, phone="+14155550144", email="grace@example.org")
    add_note(context, notes, org_id, lead, "wants a callback")
    payload = {"name": NAME, "received_at": context.clock().isoformat()}
    store_inbound_event(context, org_id, "api", f"evt-{uuid.uuid4()}", payload)


def test_backup_holds_ciphertext_and_never_the_key_table(
    context: TaskContext, make_org: MakeOrg
) -> None:
    org = make_org()
    add_lead(context, org.id, name=NAME, phone="+14155550145")
    backup = create_backup(context, org.id, context.clock())
    keys = backup_keys(org.id, backup.id)
    manifest = json.loads(stored(context, keys.manifest).read_text())
    assert manifest["org_id"] == str(org.id) and manifest["sha256"] == backup.sha256
    assert {"created_at", "expires_at", "key_version", "wrapped_key"} <= set(manifest)
    assert NAME.encode() not in stored(context, keys.bundle).read_bytes()
    records = list(open_bundle(context, keys.manifest))
    tables = {record["table"] for record in records[1:]}
    assert "leads" in tables and "org_keys" not in tables
    lead_row = next(r["row"] for r in records[1:] if r["table"] == "leads")
    assert NAME not in json.dumps(lead_row)  # ciphertext columns stay ciphertext


def test_backups_older_than_retention_are_deleted_younger_stay(
    context: TaskContext, make_org: MakeOrg
) -> None:
    org = make_org()
    now = context.clock()
    old = create_backup(context, org.id, now - timedelta(days=91))
    young = create_backup(context, org.id, now - timedelta(days=89))
    expire_backups(context, now)
    assert not stored(context, backup_keys(org.id, old.id).bundle).exists()
    assert not stored(context, backup_keys(org.id, old.id).manifest).exists()
    assert stored(context, backup_keys(org.id, young.id).bundle).exists()
    with context.db.tenant(org.id) as session:
        assert session.get(Backup, old.id).status == "deleted"  # type: ignore[union-attr]
        assert session.get(Backup, young.id).status == "available"  # type: ignore[union-attr]


def test_cancelled_org_is_deleted_after_grace_and_its_backups_unreadable(
    context: TaskContext, make_org: MakeOrg, notes_table: Table, tmp_path: Path
) -> None:
    doomed, other = make_org(), make_org()
    backups = {}
    for org in (doomed, other):
        populate(context, org.id, notes_table)
        backups[org.id] = create_backup(context, org.id, context.clock())
    backup = backups[doomed.id]
    keys = backup_keys(doomed.id, backup.id)
    files = [stored(context, keys.manifest), stored(context, keys.bundle)]
    for path in files:
        shutil.copy(path, tmp_path / path.name)
    copies, stolen = FileStore(tmp_path), files[0].name
    assert len(list(open_bundle(context, stolen, copies))) > 1  # readable while the org lives
    now = context.clock()
    cancelled_at = now - timedelta(days=31)
    with context.db.maintenance() as session:
        org = session.get(Organization, doomed.id)
        assert org is not None
        org.status, org.deletion_due_at = "cancelled", cancelled_at + timedelta(days=30)
    others_before = org_row_counts(context, other.id)

    assert process_deletions(context, now)["orgs_deleted"] >= 1

    remaining = {table: n for table, n in org_row_counts(context, doomed.id).items() if n}
    assert remaining == {}
    assert not files[1].parent.exists()
    with pytest.raises(CryptoError):
        list(open_bundle(context, stolen, copies))
    assert org_row_counts(context, other.id) == others_before
    other_keys = backup_keys(other.id, backups[other.id].id)
    assert len(list(open_bundle(context, other_keys.manifest))) > 1
    with context.db.maintenance() as session:
        audit = session.scalars(
            select(AuditEntry).where(
                AuditEntry.action == "org.deleted", AuditEntry.target == str(doomed.id)
            )
        ).one()
    assert audit.org_id is None and NAME not in json.dumps(audit.details)
    assert audit.details["rows"]["leads"] == 1

    # Not even an org re-created under the same id (with new keys) can read the old backup.
    with context.db.tenant(doomed.id) as session:
        create_organization(session, context.keyring, doomed.id, "Reborn", actor="test")
    with pytest.raises(CryptoError):
        list(open_bundle(context, stolen, copies))
    delete_organization(context, doomed.id)
