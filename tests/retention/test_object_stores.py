"""The backup store interface behaves the same on a directory and on an S3 bucket (moto's S3
server on loopback, reached through the same boto3 client code production uses): atomic
writes, reads, listing, and deletions that `exists` confirms."""

from __future__ import annotations

import io
import logging
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from leadline.errors import ConfigError
from leadline.logging import configure_logging
from leadline.objectstore import (
    FileStore,
    ObjectNotFound,
    ObjectStore,
    S3Store,
    StorageError,
    open_store,
)
from tests.support.s3 import PREFIX, AwsCredentials, Bucket, make_bucket

pytestmark = pytest.mark.integration


@pytest.fixture(params=["file", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ObjectStore]:
    if request.param == "file":
        yield FileStore(tmp_path / "backups")
    else:
        bucket: Bucket = request.getfixturevalue("bucket")
        yield open_store(bucket.url, request.getfixturevalue("s3_endpoint"))


class Interrupted(Exception):
    pass


def test_put_get_list_exists_delete(store: ObjectStore) -> None:
    store.put("org-a/one.llbk", b"bundle")
    with store.writer("org-a/one.manifest.json") as sink:
        sink.write(b"{}")
    store.put("org-b/erasures/e1.json", b"entry")
    store.put("key-escrow.json", b"escrow")

    assert store.get("org-a/one.llbk") == b"bundle"
    with store.reader("org-a/one.manifest.json") as source:
        assert source.read() == b"{}"
        source.seek(0)  # a local copy: a second pass reads the same bytes
        assert source.read() == b"{}"
    assert store.list() == [
        "key-escrow.json",
        "org-a/one.llbk",
        "org-a/one.manifest.json",
        "org-b/erasures/e1.json",
    ]
    assert store.list("org-a/") == ["org-a/one.llbk", "org-a/one.manifest.json"]
    assert store.list("org-b/erasures/") == ["org-b/erasures/e1.json"]
    assert store.exists("org-a/one.llbk") and not store.exists("org-a/two.llbk")

    store.put("org-a/one.llbk", b"replaced")
    assert store.get("org-a/one.llbk") == b"replaced"
    store.delete("org-a/one.llbk")
    store.delete("org-a/never-there.llbk")  # not an error
    assert not store.exists("org-a/one.llbk")
    with pytest.raises(ObjectNotFound):
        store.get("org-a/one.llbk")
    with pytest.raises(ObjectNotFound), store.reader("org-a/one.llbk"):
        pass
    assert store.list("org-a/") == ["org-a/one.manifest.json"]


def test_an_interrupted_write_leaves_the_old_object_whole(store: ObjectStore) -> None:
    store.put("org/escrow.json", b"old")
    with pytest.raises(Interrupted), store.writer("org/escrow.json") as sink:
        sink.write(b"half of the new")
        raise Interrupted
    with pytest.raises(Interrupted), store.writer("org/new.llbk") as sink:
        sink.write(b"half")
        raise Interrupted
    assert store.get("org/escrow.json") == b"old"
    assert store.list() == ["org/escrow.json"]  # no partial object, no temporary file


def test_keys_cannot_leave_the_store(store: ObjectStore) -> None:
    for key in ("../outside", "/etc/passwd", "org//x", "org/./x", ""):
        with pytest.raises(ValueError):
            store.put(key, b"x")


def test_files_are_private_and_deleted_orgs_leave_no_directory(tmp_path: Path) -> None:
    root = tmp_path / "backups"
    store = FileStore(root)
    store.put("org/erasures/e1.json", b"entry")
    store.put("org/one.llbk", b"bundle")
    assert stat.S_IMODE((root / "org/erasures/e1.json").stat().st_mode) == 0o600
    assert stat.S_IMODE((root / "org").stat().st_mode) == 0o700
    store.delete("org/erasures/e1.json")
    assert not (root / "org/erasures").exists()
    store.delete("org/one.llbk")
    assert not (root / "org").exists() and root.is_dir()


def test_a_versioned_bucket_keeps_nothing_after_delete(
    bucket: Bucket, s3_endpoint: str, aws_credentials: AwsCredentials
) -> None:
    versioned = make_bucket(bucket.client, versioned=True)
    store = open_store(versioned.url, s3_endpoint)
    store.put("org/one.llbk", b"first")
    store.put("org/one.llbk", b"second")
    assert len(versioned.versions("org/")) == 2

    store.delete("org/one.llbk")

    assert versioned.versions("org/") == []  # no earlier version, no delete marker
    assert not store.exists("org/one.llbk")


def test_drop_history_keeps_only_the_current_object(
    bucket: Bucket, s3_endpoint: str, aws_credentials: AwsCredentials, tmp_path: Path
) -> None:
    versioned = make_bucket(bucket.client, versioned=True)
    for store in (open_store(versioned.url, s3_endpoint), FileStore(tmp_path)):
        for content in (b"escrow 1", b"escrow 2", b"escrow 3"):
            store.put("key-escrow.json", content)
        store.drop_history("key-escrow.json")
        assert store.get("key-escrow.json") == b"escrow 3"
    assert versioned.versions() == ["key-escrow.json"]


def test_an_object_lock_refusal_is_reported_and_exists_says_it_stayed(
    bucket: Bucket, s3_endpoint: str, aws_credentials: AwsCredentials
) -> None:
    locked = make_bucket(bucket.client, locked_days=1)
    store = open_store(locked.url, s3_endpoint)
    store.put("org/one.llbk", b"kept by the lock")

    with pytest.raises(StorageError) as refused:
        store.delete("org/one.llbk")

    assert str(refused.value) == (
        f"the backup store refused to delete s3://{locked.name}/{PREFIX}/org/one.llbk "
        "(AccessDenied: an object lock or a policy keeps it)"
    )
    assert store.exists("org/one.llbk")


def test_errors_are_one_line_without_credentials(
    s3_endpoint: str, aws_credentials: AwsCredentials, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = S3Store("no-such-bucket-here", "x", s3_endpoint)
    with pytest.raises(StorageError) as no_bucket:
        missing.put("key-escrow.json", b"{}")
    assert str(no_bucket.value) == (
        "the backup store s3://no-such-bucket-here/x has no bucket 'no-such-bucket-here' "
        "(create it, or check LEADLINE_BACKUP_URL)"
    )
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.delenv("AWS_SESSION_TOKEN")
    anonymous = S3Store("no-such-bucket-here", "x", s3_endpoint)
    with pytest.raises(StorageError) as no_credentials:
        anonymous.list()
    assert str(no_credentials.value).startswith("no AWS credentials for the backup store")
    for error in (no_bucket.value, no_credentials.value):
        for secret in (aws_credentials.secret_access_key, aws_credentials.session_token):
            assert secret not in str(error)


def test_debug_logging_never_shows_the_credentials(
    bucket: Bucket, s3_endpoint: str, aws_credentials: AwsCredentials
) -> None:
    """botocore's debug lines carry the signed headers, the session token among them."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    lines = io.StringIO()
    try:
        configure_logging("DEBUG", stream=lines)
        store = open_store(bucket.url, s3_endpoint)
        store.put("key-escrow.json", b"{}")
        assert store.get("key-escrow.json") == b"{}"
        logging.getLogger("tests").debug("debug lines are written")
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])
    written = lines.getvalue()
    assert "debug lines are written" in written
    assert aws_credentials.access_key_id not in written
    assert aws_credentials.session_token not in written
    assert aws_credentials.secret_access_key not in written


def test_urls_name_a_directory_or_a_bucket(tmp_path: Path) -> None:
    assert isinstance(open_store(tmp_path.as_uri()), FileStore)
    assert isinstance(open_store(str(tmp_path)), FileStore)
    for bad in ("ftp://host/x", "s3://", "s3://bucket/x?versionId=1", "file://otherhost/x"):
        with pytest.raises(ConfigError, match="not a backup store"):
            open_store(bad)
    with pytest.raises(ConfigError, match="must not hold credentials"):
        open_store("s3://AKIAEXAMPLE:secret@bucket/prefix")
