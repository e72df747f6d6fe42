"""Restores: after an erasure, atomically, and from the backup directory alone after the
database is lost."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import stat
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, func, select

from leadline.errors import CryptoError, LeadlineError
from leadline.objectstore import FileStore
from leadline.settings import Settings, parse_master_keys
from models.bundles import BundleWriter
from models.crypto import Keyring, OrgCipher, new_key
from models.key_escrow import escrow_cipher, read_escrow, wrap_keys, write_escrow
from models.messaging import ConversationMessage
from models.orgs import create_organization
from models.tables import AuditEntry, Lead, Organization
from models.webhooks import WebhookAttempt, WebhookDelivery
from tasks import restore as restore_module
from tasks.backups import (
    BackupKeys,
    backup_keys,
    bundle_records,
    create_backup,
    list_backups,
    open_bundle,
)
from tasks.context import TaskContext
from tasks.deletion import delete_organization
from tasks.restore import describe, restore_backup
from tests.support.restore import (
    CliResult,
    Person,
    ScratchDatabase,
    data_counts,
    erase_now,
    find_by_phone,
    lead_names,
    seeded_org,
    stage_disaster,
)
from tests.support.services import MakeOrg, random_master_key

pytestmark = pytest.mark.integration


ADA = Person("Ada Erased", "+14155550171", "ada.restore@example.org")
BOB = Person("Bob Stays", "+14155550172", "bob.restore@example.org")
CY = Person("Cy Stays", "+14155550173", "cy.restore@example.org")


def stored(context: TaskContext, keys: BackupKeys) -> tuple[Path, Path]:
    """A backup's manifest and bundle files in the (directory) backup store."""
    root = Path(context.settings.leadline_backup_dir)
    return root / keys.manifest, root / keys.bundle


def restore_audits(context: TaskContext, org_id: uuid.UUID) -> list[AuditEntry]:
    with context.db.maintenance() as session:
        query = select(AuditEntry).where(
            AuditEntry.org_id == org_id, AuditEntry.action == "backup.restored"
        )
        return list(session.scalars(query))


def drop_tied_rows(context: TaskContext, org_id: uuid.UUID) -> None:
    """Lose conversation messages and webhook deliveries (and so their attempts)."""
    with context.db.tenant(org_id) as session:
        session.execute(delete(ConversationMessage))
        session.execute(delete(WebhookAttempt))
        session.execute(delete(WebhookDelivery))


def test_restore_after_an_erasure_keeps_the_person_erased_and_succeeds(
    context: TaskContext, make_org: MakeOrg
) -> None:
    org, (ada, _bob) = seeded_org(context, make_org, (ADA, BOB))
    before_erasure = create_backup(context, org.id, context.clock())
    erase_now(context, org.id, ada)
    after_erasure = create_backup(context, org.id, context.clock())
    live = data_counts(context, org.id)
    assert live["webhook_attempts"] == 2 and live["conversation_messages"] == 1

    summary = restore_backup(context, before_erasure.id, context.clock())

    assert summary["erased_again"] == 1
    assert summary["withheld"]["webhook_attempts"] == 2  # the FK violation of issue 12
    assert summary["withheld"]["conversation_messages"] == 1
    assert sum(summary["inserted"].values()) == 0
    assert data_counts(context, org.id) == live
    assert find_by_phone(context, org.id, ADA.phone) is None
    assert lead_names(context, org.id) == {BOB.name}
    assert len(restore_audits(context, org.id)) == 1

    # What was lost comes back, from either backup; the erased person never does.
    for backup in (before_erasure, after_erasure):
        drop_tied_rows(context, org.id)
        restored = restore_backup(context, backup.id, context.clock())
        assert restored["inserted"] == {
            "conversation_messages": 1,
            "webhook_deliveries": 1,
            "webhook_attempts": 2,
        }
        assert data_counts(context, org.id) == live
    assert find_by_phone(context, org.id, ADA.phone) is None
    audits = restore_audits(context, org.id)
    assert len(audits) == 3
    assert all(ADA.name not in json.dumps(a.details) for a in audits)


def corrupt_tail(manifest_path: Path) -> None:
    """Flip a byte near the end of the bundle and fix the checksum, so only decryption of the
    last chunk can notice."""
    manifest = json.loads(manifest_path.read_text())
    bundle = manifest_path.with_name(manifest["bundle"])
    data = bytearray(bundle.read_bytes())
    data[-5] ^= 0x01
    bundle.write_bytes(bytes(data))
    manifest["sha256"] = hashlib.sha256(bytes(data)).hexdigest()
    manifest_path.write_text(json.dumps(manifest))


def test_a_restore_that_fails_leaves_the_database_as_it_was(
    context: TaskContext, make_org: MakeOrg, monkeypatch: pytest.MonkeyPatch
) -> None:
    org, _ = seeded_org(context, make_org, (BOB, CY))
    backup = create_backup(context, org.id, context.clock())
    drop_tied_rows(context, org.id)
    before = data_counts(context, org.id)

    # An injected failure after rows were already inserted in the transaction.
    flushes = {"n": 0}
    real_flush = restore_module.Restorer.flush

    def failing_flush(self: Any) -> None:
        real_flush(self)
        if self.inserted:
            flushes["n"] += 1
            raise RuntimeError("disk full")

    monkeypatch.setattr(restore_module.Restorer, "flush", failing_flush)
    with pytest.raises(RuntimeError):
        restore_backup(context, backup.id, context.clock())
    assert flushes["n"] == 1
    assert data_counts(context, org.id) == before
    monkeypatch.undo()

    # A damaged tail: nothing is written either, and the error says what is wrong.
    corrupt_tail(stored(context, backup_keys(org.id, backup.id))[0])
    with pytest.raises(CryptoError):
        restore_backup(context, backup.id, context.clock())
    assert data_counts(context, org.id) == before
    assert restore_audits(context, org.id) == []


def test_restore_from_refuses_a_database_that_is_not_empty(
    context: TaskContext,
    settings: Settings,
    make_org: MakeOrg,
    leadline_cli: Callable[..., CliResult],
) -> None:
    make_org()
    result = leadline_cli(settings, "backup", "restore", "--from", settings.leadline_backup_dir)
    assert result.exit_code == 1
    assert result.stderr.startswith("error: the target database is not empty")
    assert "Traceback" not in result.stderr
    missing = leadline_cli(settings, "backup", "restore", "--from", "/nonexistent/backups")
    assert missing.exit_code == 1
    assert missing.stderr.strip() == (
        "error: backup directory /nonexistent/backups does not exist (pass the directory "
        "LEADLINE_BACKUP_DIR named, or a copy of it)"
    )
    both = leadline_cli(settings, "backup", "restore", str(uuid.uuid4()), "--from", "/x")
    assert both.exit_code == 2


def org_count(context: TaskContext) -> int:
    with context.db.maintenance() as session:
        return session.scalar(select(func.count()).select_from(Organization)) or 0


def test_disaster_recovery_from_the_backup_directory_alone(
    scratch_database: ScratchDatabase, leadline_cli: Callable[..., CliResult], tmp_path: Path
) -> None:
    """Several orgs, backups, one org deleted; the database is dropped and recreated, then
    `backup restore --from DIR` brings back every surviving org, and only those."""
    scratch = scratch_database
    scratch.migrate()
    context = scratch.context()
    disaster = stage_disaster(context, ADA, BOB, CY)
    kept, other, doomed = disaster.kept, disaster.other, disaster.doomed
    expected, names = disaster.counts, disaster.names
    assert names[kept] == {BOB.name} and names[other] == {ADA.name, BOB.name}

    backup_dir = Path(scratch.settings.leadline_backup_dir)
    stale_copy = tmp_path / "doomed-copy"
    shutil.copytree(backup_dir / str(doomed), stale_copy)
    delete_organization(context, doomed)
    escrow = read_escrow(FileStore(backup_dir))
    assert set(escrow) == {kept, other}
    # An old copy of the deleted org's bundles, put back: the escrow cannot open it.
    shutil.copytree(stale_copy, backup_dir / str(doomed))
    doomed_manifest = next((backup_dir / str(doomed)).glob("*.manifest.json"))
    manifest_key = doomed_manifest.relative_to(backup_dir).as_posix()
    for org_id, keys in escrow.items():
        cipher = escrow_cipher(context.keyring, org_id, keys)
        doomed_cipher = OrgCipher(org_id=doomed, deks=cipher.deks)
        with pytest.raises(CryptoError):
            list(bundle_records(FileStore(backup_dir), manifest_key, doomed_cipher))
    context.db.dispose()

    # The database is lost.
    scratch.drop()
    scratch.create()
    migrated = leadline_cli(scratch.settings, "migrate", "--json")
    assert migrated.exit_code == 0, migrated.stderr

    # Refusals first, each leaving the new database empty.
    no_escrow = tmp_path / "no-escrow"
    shutil.copytree(backup_dir, no_escrow)
    (no_escrow / "key-escrow.json").unlink()
    refused = leadline_cli(scratch.settings, "backup", "restore", "--from", str(no_escrow))
    assert refused.exit_code == 1 and refused.stderr.startswith("error: no key escrow at ")
    wrong = leadline_cli(
        scratch.settings,
        *("backup", "restore", "--from", str(backup_dir)),
        LEADLINE_MASTER_KEYS=random_master_key("test1"),  # same id, another key
    )
    assert wrong.exit_code == 1 and "does not open with master key 'test1'" in wrong.stderr
    damaged = tmp_path / "damaged"
    shutil.copytree(backup_dir, damaged)
    corrupt_tail(next((damaged / str(other)).glob("*.manifest.json")))
    broken = leadline_cli(scratch.settings, "backup", "restore", "--from", str(damaged))
    assert broken.exit_code == 1 and "corrupt or does not open" in broken.stderr
    altered = tmp_path / "altered"
    shutil.copytree(backup_dir, altered)
    (journal,) = (altered / str(other) / "erasures").glob("*.json")
    assert stat.S_IMODE(journal.stat().st_mode) == 0o600
    entry = json.loads(journal.read_text())
    assert set(entry) == {"id", "sealed"}  # the erasure's time is sealed too
    sealed = bytearray(base64.b64decode(entry["sealed"]))
    sealed[-1] ^= 0x01
    journal.write_text(json.dumps({**entry, "sealed": base64.b64encode(sealed).decode()}))
    tampered = leadline_cli(scratch.settings, "backup", "restore", "--from", str(altered))
    assert tampered.exit_code == 1 and "erasure journal of organisation" in tampered.stderr
    fresh = scratch.context()
    assert org_count(fresh) == 0

    restored = leadline_cli(
        scratch.settings, "backup", "restore", "--from", str(backup_dir), "--json"
    )
    assert restored.exit_code == 0, restored.stderr
    summary = restored.json()
    statuses = {org["org_id"]: org["status"] for org in summary["orgs"]}
    assert statuses == {str(kept): "restored", str(other): "restored", str(doomed): "unreadable"}
    text = describe(summary).splitlines()
    assert f"org {doomed}: not restored, no data key in the key escrow" in "\n".join(text)
    assert text[-1] == "2 organisations restored, 1 not"

    for org_id in (kept, other):
        assert data_counts(fresh, org_id) == expected[org_id]
        assert lead_names(fresh, org_id) == names[org_id]  # decrypted with the escrowed keys
    assert find_by_phone(fresh, kept, ADA.phone) is None
    assert find_by_phone(fresh, other, CY.phone) is None
    restored_other = next(o for o in summary["orgs"] if o["org_id"] == str(other))
    assert restored_other["erased_again"] == 1 and restored_other["journal_tombstones"] == 1
    assert find_by_phone(fresh, other, ADA.phone) is not None
    with fresh.db.maintenance() as session:
        assert session.get(Organization, doomed) is None
        assert session.get(Organization, kept).name == "Org 0"  # type: ignore[union-attr]
        assert (
            session.scalar(select(func.count()).select_from(Lead).where(Lead.org_id == doomed)) == 0
        )
    assert len(restore_audits(fresh, kept)) == 1
    assert len(list_backups(fresh, kept)) == 1  # registered again: they still expire on time

    again = leadline_cli(scratch.settings, "backup", "restore", "--from", str(backup_dir))
    assert again.exit_code == 1 and "not empty" in again.stderr
    fresh.db.dispose()


def test_rotate_master_then_a_backup_rewrites_the_escrow_under_the_new_primary(
    scratch_database: ScratchDatabase, leadline_cli: Callable[..., CliResult]
) -> None:
    scratch = scratch_database
    scratch.migrate()
    context = scratch.context()
    org_id = uuid.uuid4()
    with context.db.tenant(org_id) as session:
        create_organization(session, context.keyring, org_id, "Rotating", actor="test")
    context.db.dispose()
    store = FileStore(Path(scratch.settings.leadline_backup_dir))
    first = leadline_cli(scratch.settings, "backup", "create", str(org_id), "--json")
    assert first.exit_code == 0, first.stderr
    assert {key.kek_id for key in read_escrow(store)[org_id]} == {"test1"}

    old = scratch.settings.leadline_master_keys.get_secret_value()  # type: ignore[union-attr]
    new = random_master_key("test2")
    both = f"{new},{old}"
    rotated = leadline_cli(scratch.settings, "keys", "rotate-master", LEADLINE_MASTER_KEYS=both)
    assert rotated.exit_code == 0, rotated.stderr
    again = leadline_cli(scratch.settings, "backup", "create", LEADLINE_MASTER_KEYS=both)
    assert again.exit_code == 0, again.stderr

    keys = read_escrow(store)[org_id]
    assert {key.kek_id for key in keys} == {"test2"}
    only_new = Keyring(keys=(parse_master_keys(new)[0],))
    assert escrow_cipher(only_new, org_id, keys).deks  # the old master key is not needed


def test_a_backup_run_keeps_entries_of_orgs_the_database_lost_and_repairs_a_damaged_escrow(
    context: TaskContext, make_org: MakeOrg
) -> None:
    """A backup taken on a fresh database before the restore must not wipe the escrow."""
    store = FileStore(Path(context.settings.leadline_backup_dir))
    org = make_org()
    create_backup(context, org.id, context.clock())
    lost_org = uuid.uuid4()
    escrow = read_escrow(store)
    escrow[lost_org] = wrap_keys(context.keyring, lost_org, {1: new_key()})
    write_escrow(store, escrow, context.clock())

    create_backup(context, org.id, context.clock())
    assert {org.id, lost_org} <= set(read_escrow(store))

    store.path("key-escrow.json").write_text("{damaged")
    create_backup(context, org.id, context.clock())
    assert org.id in read_escrow(store)


def test_a_row_the_database_refuses_rolls_back_with_a_clear_error_and_no_values(
    context: TaskContext, make_org: MakeOrg
) -> None:
    """A bundle holding an attempt whose delivery is nowhere (the crash of issue 12, forced)."""
    org, _ = seeded_org(context, make_org, (BOB,))
    backup = create_backup(context, org.id, context.clock())
    keys = backup_keys(org.id, backup.id)
    manifest_path, bundle_path = stored(context, keys)
    records = list(open_bundle(context, keys.manifest))
    attempt = next(r for r in records if r.get("table") == "webhook_attempts")
    orphan = {**attempt["row"], "id": str(uuid.uuid4()), "delivery_id": str(uuid.uuid4())}
    orphan["error_text"] = BOB.phone
    manifest = json.loads(manifest_path.read_text())
    with context.db.tenant(org.id) as session:
        cipher = context.keys.cipher(session, org.id)
    key = cipher.decrypt(
        base64.b64decode(manifest["wrapped_key"]), "backups", "bundle_key", backup.id
    )
    with bundle_path.open("wb") as sink:
        writer = BundleWriter(sink, key, backup.id)
        for record in [*records, {"table": "webhook_attempts", "row": orphan}]:
            writer.write_record(record)
        writer.close()
    manifest["sha256"] = hashlib.sha256(bundle_path.read_bytes()).hexdigest()
    manifest_path.write_text(json.dumps(manifest))
    drop_tied_rows(context, org.id)
    before = data_counts(context, org.id)

    with pytest.raises(LeadlineError) as refused:
        restore_backup(context, backup.id, context.clock())

    message = str(refused.value)
    assert message.startswith(f"backup {backup.id} was not restored, nothing was written")
    assert "fk_webhook_attempts_delivery_id_webhook_deliveries" in message
    assert BOB.phone not in message
    assert data_counts(context, org.id) == before
    assert restore_audits(context, org.id) == []


def test_backup_restore_id_through_the_cli_on_a_live_database(
    context: TaskContext,
    settings: Settings,
    make_org: MakeOrg,
    leadline_cli: Callable[..., CliResult],
) -> None:
    org, (ada, _bob) = seeded_org(context, make_org, (ADA, BOB))
    backup = create_backup(context, org.id, context.clock())
    erase_now(context, org.id, ada)
    drop_tied_rows(context, org.id)

    result = leadline_cli(settings, "backup", "restore", str(backup.id))

    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == "restored 4 rows; 1 erased leads kept erased"
    assert find_by_phone(context, org.id, ADA.phone) is None
    unknown = leadline_cli(settings, "backup", "restore", str(uuid.uuid4()))
    assert (unknown.exit_code, unknown.stderr) == (
        1,
        "error: no available backup with that id (`leadline backup list` shows them)\n",
    )
