"""Backups in an S3 bucket (moto's S3 server on loopback, the production boto3 client code):
create, list, restore by id, expiry that checks its deletions, org deletion, and a lost
database rebuilt from the bucket alone with `backup restore --from s3://...`."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from leadline.errors import CryptoError, LeadlineError
from leadline.objectstore import open_store
from leadline.settings import Settings
from models.crypto import OrgCipher
from models.key_escrow import ESCROW_KEY, escrow_cipher, read_escrow
from models.orgs import create_organization
from models.retention import Backup
from models.tables import AuditEntry, Lead, Organization
from tasks.backups import (
    backup_keys,
    bundle_records,
    create_backup,
    expire_backups,
    list_backups,
    open_bundle,
)
from tasks.context import TaskContext
from tasks.deletion import delete_organization
from tasks.restore import restore_backup
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
from tests.support.s3 import Bucket, backups_in, context_with, make_bucket
from tests.support.services import MakeOrg

pytestmark = pytest.mark.integration

ADA = Person("Ada Erased", "+14155550181", "ada.s3@example.org")
BOB = Person("Bob Stays", "+14155550182", "bob.s3@example.org")
CY = Person("Cy Erased Later", "+14155550183", "cy.s3@example.org")


def backup_status(context: TaskContext, backup_id: uuid.UUID) -> str:
    with context.db.maintenance() as session:
        backup = session.get(Backup, backup_id)
        assert backup is not None
        return backup.status


def audit_actions(context: TaskContext, backup_id: uuid.UUID) -> list[str]:
    with context.db.maintenance() as session:
        query = select(AuditEntry.action).where(AuditEntry.target == str(backup_id))
        return sorted(session.scalars(query))


def test_backup_create_puts_bundle_manifest_and_escrow_in_the_bucket(
    s3_context: TaskContext,
    s3_settings: Settings,
    bucket: Bucket,
    make_org: MakeOrg,
    leadline_cli: Callable[..., CliResult],
) -> None:
    org, _ = seeded_org(s3_context, make_org, (BOB,))

    created = leadline_cli(s3_settings, "backup", "create", str(org.id), "--json")

    assert created.exit_code == 0, created.stderr
    backup_id = uuid.UUID(created.json()["id"])
    keys = backup_keys(org.id, backup_id)
    assert created.json()["location"] == f"{bucket.url}/{keys.bundle}"
    assert set(bucket.objects()) == {ESCROW_KEY, keys.bundle, keys.manifest}
    manifest = json.loads(bucket.read(keys.manifest))
    assert manifest["org_id"] == str(org.id) and manifest["bundle"] == f"{backup_id}.llbk"
    bundle = bucket.read(keys.bundle)
    assert manifest["size_bytes"] == len(bundle)
    assert BOB.name.encode() not in bundle and BOB.phone.encode() not in bundle
    assert org.id in read_escrow(s3_context.backups)
    records = list(open_bundle(s3_context, keys.manifest))
    assert "leads" in {record.get("table") for record in records[1:]}

    listed = leadline_cli(s3_settings, "backup", "list", str(org.id), "--json")
    assert listed.exit_code == 0, listed.stderr
    assert [(row["id"], row["status"]) for row in listed.json()] == [(str(backup_id), "available")]
    assert [b.path for b in list_backups(s3_context, org.id)] == [keys.bundle]


def test_restore_by_id_reads_the_bucket_and_keeps_an_erased_person_erased(
    s3_context: TaskContext,
    make_org: MakeOrg,
    leadline_cli: Callable[..., CliResult],
    s3_settings: Settings,
) -> None:
    org, (ada, _bob) = seeded_org(s3_context, make_org, (ADA, BOB))
    backup = create_backup(s3_context, org.id, s3_context.clock())
    erase_now(s3_context, org.id, ada)
    live = data_counts(s3_context, org.id)

    summary = restore_backup(s3_context, backup.id, s3_context.clock())

    assert summary["erased_again"] == 1 and sum(summary["inserted"].values()) == 0
    assert data_counts(s3_context, org.id) == live
    assert find_by_phone(s3_context, org.id, ADA.phone) is None
    result = leadline_cli(s3_settings, "backup", "restore", str(backup.id))
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == "restored 0 rows; 1 erased leads kept erased"


def new_org(context: TaskContext) -> uuid.UUID:
    org_id = uuid.uuid4()
    with context.db.tenant(org_id) as session:
        create_organization(session, context.keyring, org_id, "Expiring", actor="test")
    return org_id


def test_expiry_deletes_the_objects_and_checks_that_they_are_gone(
    isolated_s3_context: TaskContext, bucket: Bucket
) -> None:
    context = isolated_s3_context
    org_id = new_org(context)
    now = context.clock()
    old = create_backup(context, org_id, now - timedelta(days=91))
    young = create_backup(context, org_id, now - timedelta(days=89))

    assert expire_backups(context, now) == {"expired": 1, "not_deleted": 0, "missing": 0}

    old_keys, young_keys = backup_keys(org_id, old.id), backup_keys(org_id, young.id)
    assert bucket.objects(f"{org_id}/") == sorted([young_keys.bundle, young_keys.manifest])
    assert backup_status(context, old.id) == "deleted"
    assert backup_status(context, young.id) == "available"
    assert old_keys.bundle not in bucket.objects()


def test_a_deletion_that_does_not_take_is_reported_and_the_row_stays(
    isolated_s3_context: TaskContext, s3_endpoint: str, bucket: Bucket
) -> None:
    """A bucket whose object lock (compliance mode) outlasts the retention window."""
    locked = make_bucket(bucket.client, locked_days=365)
    context = context_with(
        isolated_s3_context, backups_in(isolated_s3_context.settings, locked, s3_endpoint)
    )
    org_id = new_org(context)
    now = context.clock()
    backup = create_backup(context, org_id, now - timedelta(days=91))
    keys = backup_keys(org_id, backup.id)

    first = expire_backups(context, now)
    again = expire_backups(context, now)

    assert first == again == {"expired": 0, "not_deleted": 1, "missing": 0}
    assert {keys.bundle, keys.manifest} <= set(locked.objects())
    assert backup_status(context, backup.id) == "available"  # never marked deleted
    assert audit_actions(context, backup.id) == [
        "backup.created",
        "backup.not_deleted",
        "backup.not_deleted",
    ]
    with context.db.maintenance() as session:
        query = select(AuditEntry).where(AuditEntry.action == "backup.not_deleted")
        entry = session.scalars(query).first()
        assert entry is not None
        assert entry.details == {
            "store": locked.url,
            "still_stored": [keys.bundle, keys.manifest],
        }


def test_an_expired_backup_that_is_not_in_the_store_is_marked_missing_not_deleted(
    isolated_s3_context: TaskContext, bucket: Bucket
) -> None:
    """Nothing here can tell that objects it never saw are gone (another host's disk)."""
    context = isolated_s3_context
    org_id = new_org(context)
    now = context.clock()
    backup = create_backup(context, org_id, now - timedelta(days=91))
    keys = backup_keys(org_id, backup.id)
    bucket.remove(keys.bundle)
    bucket.remove(keys.manifest)

    assert expire_backups(context, now) == {"expired": 0, "not_deleted": 0, "missing": 1}
    assert backup_status(context, backup.id) == "missing"
    assert audit_actions(context, backup.id) == ["backup.created", "backup.missing"]
    assert expire_backups(context, now)["missing"] == 0  # reported once


def test_expiry_on_a_versioned_bucket_leaves_no_version_behind(
    isolated_s3_context: TaskContext, s3_endpoint: str, bucket: Bucket
) -> None:
    versioned = make_bucket(bucket.client, versioned=True)
    context = context_with(
        isolated_s3_context, backups_in(isolated_s3_context.settings, versioned, s3_endpoint)
    )
    org_id = new_org(context)
    now = context.clock()
    backup = create_backup(context, org_id, now - timedelta(days=91))
    assert len(versioned.versions(f"{org_id}/")) == 2

    assert expire_backups(context, now)["expired"] == 1
    assert versioned.versions(f"{org_id}/") == []  # no older version, no delete marker
    assert backup_status(context, backup.id) == "deleted"


def test_org_deletion_removes_its_escrow_entry_and_every_object_of_it(
    s3_context: TaskContext, bucket: Bucket, make_org: MakeOrg
) -> None:
    (doomed, (cy,)), (other, _) = (seeded_org(s3_context, make_org, (who,)) for who in (CY, BOB))
    backups = {
        org.id: create_backup(s3_context, org.id, s3_context.clock()) for org in (doomed, other)
    }
    erase_now(s3_context, doomed.id, cy)  # an erasure journal entry in the bucket
    assert any("/erasures/" in key for key in bucket.objects(f"{doomed.id}/"))
    stolen = {key: bucket.read(key) for key in bucket.objects(f"{doomed.id}/")}

    summary = delete_organization(s3_context, doomed.id)

    assert summary is not None and summary["backup_files"] == 1
    assert bucket.objects(f"{doomed.id}/") == []
    assert set(read_escrow(s3_context.backups)) >= {other.id}
    assert doomed.id not in read_escrow(s3_context.backups)
    other_keys = backup_keys(other.id, backups[other.id].id)
    assert len(list(open_bundle(s3_context, other_keys.manifest))) > 1

    # Copies taken before the deletion, put back: neither the database nor the escrow opens them.
    for key, data in stolen.items():
        bucket.write(key, data)
    doomed_keys = backup_keys(doomed.id, backups[doomed.id].id)
    with pytest.raises(LeadlineError):
        list(open_bundle(s3_context, doomed_keys.manifest))
    for org_id, keys in read_escrow(s3_context.backups).items():
        deks = escrow_cipher(s3_context.keyring, org_id, keys).deks
        with pytest.raises(CryptoError):
            list(
                bundle_records(
                    s3_context.backups, doomed_keys.manifest, OrgCipher(org_id=doomed.id, deks=deks)
                )
            )


def test_org_deletion_on_a_versioned_bucket_leaves_no_earlier_escrow_with_its_keys(
    context: TaskContext, settings: Settings, s3_endpoint: str, bucket: Bucket, make_org: MakeOrg
) -> None:
    """Every escrow rewrite leaves a version behind; one from before the deletion would
    still open the deleted org's bundles with the master key."""
    versioned = make_bucket(bucket.client, versioned=True)
    store_context = context_with(context, backups_in(settings, versioned, s3_endpoint))
    doomed, other = make_org(), make_org()
    for org in (doomed, other, doomed):
        create_backup(store_context, org.id, store_context.clock())

    delete_organization(store_context, doomed.id)

    assert versioned.versions(f"{doomed.id}/") == []
    assert versioned.versions(ESCROW_KEY) == [ESCROW_KEY]  # the current escrow alone
    escrow = read_escrow(store_context.backups)
    assert doomed.id not in escrow and other.id in escrow


def test_disaster_recovery_from_the_bucket_alone(
    scratch_database: ScratchDatabase,
    s3_endpoint: str,
    bucket: Bucket,
    leadline_cli: Callable[..., CliResult],
) -> None:
    """Mirror of the directory disaster test: orgs, backups, an erasure after the last backup
    (only the journal in the bucket knows it), one org deleted; the database is dropped and
    migrated again, and `backup restore --from s3://...` brings back every surviving org."""
    scratch = scratch_database
    scratch.settings = backups_in(scratch.settings, bucket, s3_endpoint)
    scratch.migrate()
    context = scratch.context()
    disaster = stage_disaster(context, ADA, BOB, CY)
    kept, other, doomed = disaster.kept, disaster.other, disaster.doomed
    expected, names = disaster.counts, disaster.names
    assert len(bucket.objects(f"{other}/erasures/")) == 1
    stale_copy = {key: bucket.read(key) for key in bucket.objects(f"{doomed}/")}
    delete_organization(context, doomed)
    assert set(read_escrow(context.backups)) == {kept, other}
    for key, data in stale_copy.items():  # an old copy of the deleted org's objects
        bucket.write(key, data)
    context.db.dispose()

    scratch.drop()
    scratch.create()
    migrated = leadline_cli(scratch.settings, "migrate", "--json")
    assert migrated.exit_code == 0, migrated.stderr

    restored = leadline_cli(scratch.settings, "backup", "restore", "--from", bucket.url, "--json")

    assert restored.exit_code == 0, restored.stderr
    summary = restored.json()
    assert summary["store"] == bucket.url
    statuses = {org["org_id"]: org["status"] for org in summary["orgs"]}
    assert statuses == {str(kept): "restored", str(other): "restored", str(doomed): "unreadable"}
    fresh = scratch.context()
    for org_id in (kept, other):
        assert data_counts(fresh, org_id) == expected[org_id]
        assert lead_names(fresh, org_id) == names[org_id]
    assert find_by_phone(fresh, kept, ADA.phone) is None
    assert find_by_phone(fresh, other, CY.phone) is None  # the journal in the bucket survived
    restored_other = next(o for o in summary["orgs"] if o["org_id"] == str(other))
    assert restored_other["journal_tombstones"] == 1
    with fresh.db.maintenance() as session:
        assert session.get(Organization, doomed) is None
        doomed_leads = select(func.count()).select_from(Lead).where(Lead.org_id == doomed)
        assert session.scalar(doomed_leads) == 0
    assert len(list_backups(fresh, kept)) == 1  # registered again: they still expire on time

    again = leadline_cli(scratch.settings, "backup", "restore", "--from", bucket.url)
    assert again.exit_code == 1 and "not empty" in again.stderr
    fresh.db.dispose()


def test_restore_from_an_empty_bucket_prefix_says_what_is_missing(
    scratch_database: ScratchDatabase,
    s3_endpoint: str,
    bucket: Bucket,
    leadline_cli: Callable[..., CliResult],
) -> None:
    scratch = scratch_database
    scratch.settings = backups_in(scratch.settings, bucket, s3_endpoint)
    scratch.migrate()
    empty = f"s3://{bucket.name}/nothing-here"

    refused = leadline_cli(scratch.settings, "backup", "restore", "--from", empty)

    assert refused.exit_code == 1
    assert refused.stderr.strip() == (
        f"error: no key escrow at {empty}/key-escrow.json (every backup run writes it; "
        "restore --from needs the whole backup store, key-escrow.json included)"
    )
    store = open_store(empty, s3_endpoint)
    assert store.list() == []
