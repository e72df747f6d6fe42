"""Where backups live: one small object-store interface over a directory or an S3 bucket.

Bundles, manifests, the key escrow and the erasure journal are objects named by keys such as
`<org id>/<backup id>.llbk` (always `/`-separated, relative to the store's root). Every
write is atomic: a reader sees the old object or the whole new one, never part of it (a
directory: temporary file, fsync, rename, fsync of the directory; S3: an object appears only
when its upload completes). `delete` removes every stored copy (on a versioned bucket, every
version), and `exists` says whether any copy is still stored, so a caller can check that a
deletion took.

Files are mode 0600 and directories 0700. S3 credentials come only from boto3's standard
chain (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN, AWS_PROFILE and
~/.aws/config, web identity, instance roles); they never pass through Leadline's settings,
messages or logs.
"""

from __future__ import annotations

import builtins  # S3Store.list shadows `list` in annotations inside the class
import contextlib
import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import IO, TYPE_CHECKING, Protocol
from urllib.parse import unquote, urlsplit

from leadline.errors import ConfigError, LeadlineError, NotFoundError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import ObjectIdentifierTypeDef

# Objects larger than this are spooled to disk before an upload (bundles can be large).
SPOOL_BYTES = 8 << 20
# Codes S3-compatible stores answer when they do not implement object versions.
NO_VERSIONS = frozenset({"NotImplemented", "MethodNotAllowed", "XNotImplemented"})
BAD_URL = "not a backup store (use a directory, file:///path or s3://bucket/prefix)"


class StorageError(LeadlineError):
    """The backup store refused or could not be reached. The message names the store and the
    operation, never credentials."""


class ObjectNotFound(NotFoundError):
    """No object under that key."""


class ObjectStore(Protocol):
    url: str  # where the store is, for messages (no credentials in it)

    def put(self, key: str, data: bytes) -> None: ...

    def writer(self, key: str) -> contextlib.AbstractContextManager[IO[bytes]]:
        """Stream an object in; it appears, whole, only if the block ends without error."""
        ...

    def get(self, key: str) -> bytes: ...

    def reader(self, key: str) -> contextlib.AbstractContextManager[IO[bytes]]:
        """Stream an object out (a local copy, so two passes see the same bytes)."""
        ...

    def list(self, prefix: str = "") -> list[str]:
        """Keys of every object under `prefix`, sorted."""
        ...

    def delete(self, key: str) -> None:
        """Remove every stored copy; a missing object is not an error."""
        ...

    def exists(self, key: str) -> bool:
        """Whether any copy of the object is still stored."""
        ...

    def drop_history(self, key: str) -> None:
        """Keep only the current object: earlier versions (a versioned bucket) are deleted."""
        ...

    def location(self, key: str) -> str:
        """The object's address, for messages."""
        ...


def open_store(url: str, s3_endpoint_url: str | None = None) -> ObjectStore:
    """The store a `file:///path` or `s3://bucket/prefix` URL (or a plain path) names."""
    if url.startswith("s3://"):
        bucket, prefix = parse_s3_url(url)
        return S3Store(bucket, prefix, s3_endpoint_url)
    return FileStore(file_path(url))


def parse_s3_url(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    if "@" in parts.netloc:
        raise ConfigError(
            "a backup store URL must not hold credentials (give them as AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY, or AWS_PROFILE)"
        )
    if parts.scheme != "s3" or not parts.netloc or parts.query or parts.fragment:
        raise ConfigError(BAD_URL)
    return parts.netloc, parts.path.strip("/")


def file_path(url: str) -> Path:
    if "://" not in url:
        return Path(url).resolve()
    parts = urlsplit(url)
    if parts.scheme != "file" or parts.netloc not in ("", "localhost"):
        raise ConfigError(BAD_URL)
    return Path(unquote(parts.path)).resolve()


def store_url(url: str) -> str:
    """A URL in its canonical form (plain paths as file:// URLs), to compare two of them."""
    if url.startswith("s3://"):
        bucket, prefix = parse_s3_url(url)
        return f"s3://{bucket}/{prefix}".rstrip("/")
    return file_path(url).as_uri()


def checked_key(key: str) -> PurePosixPath:
    path = PurePosixPath(key)
    if not key or path.is_absolute() or any(part in ("", ".", "..") for part in key.split("/")):
        raise ValueError(f"not a relative object key: {key!r}")
    return path


# --- a directory ------------------------------------------------------------------------------


class FileStore:
    """Objects as files under a directory (one host's disk, or a shared mount)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.url = root.as_uri()

    def path(self, key: str) -> Path:
        return self.root.joinpath(*checked_key(key).parts)

    def location(self, key: str) -> str:
        return str(self.path(key))

    def put(self, key: str, data: bytes) -> None:
        with self.writer(key) as sink:
            sink.write(data)

    @contextlib.contextmanager
    def writer(self, key: str) -> Iterator[IO[bytes]]:
        path = self.path(key)
        partial = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.partial")
        descriptor = self._create_private(partial)
        try:
            with os.fdopen(descriptor, "wb") as sink:
                yield sink
                sink.flush()
                os.fsync(sink.fileno())
            partial.replace(path)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        fsync_directory(path.parent)

    def _create_private(self, path: Path) -> int:
        # Twice: a delete that pruned the (then empty) directory may race with this write.
        for attempt in range(2):
            self._make_directories(path.parent)
            try:
                return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileNotFoundError:
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def _make_directories(self, directory: Path) -> None:
        """Every level 0700 (mkdir's `parents` would give the upper ones the umask's mode)."""
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        for level in [*reversed(directory.relative_to(self.root).parents), directory]:
            (self.root / level).mkdir(mode=0o700, exist_ok=True)

    def get(self, key: str) -> bytes:
        with self.reader(key) as source:
            return source.read()

    @contextlib.contextmanager
    def reader(self, key: str) -> Iterator[IO[bytes]]:
        try:
            source = self.path(key).open("rb")
        except FileNotFoundError:
            raise ObjectNotFound(f"no object at {self.location(key)}") from None
        with source:
            yield source

    def list(self, prefix: str = "") -> list[str]:
        directory, _, _ = prefix.rpartition("/")
        base = self.path(directory) if directory else self.root
        if not base.is_dir():
            return []
        keys = (
            path.relative_to(self.root).as_posix()
            for path in base.rglob("*")
            if path.is_file() and not path.name.endswith(".partial")
        )
        return sorted(key for key in keys if key.startswith(prefix))

    def delete(self, key: str) -> None:
        path = self.path(key)
        path.unlink(missing_ok=True)
        self._prune(path.parent)

    def _prune(self, directory: Path) -> None:
        """Empty directories go too: a deleted organisation leaves no trace of its id."""
        while directory != self.root and self.root in directory.parents:
            try:
                directory.rmdir()
            except OSError:
                return
            directory = directory.parent

    def exists(self, key: str) -> bool:
        return self.path(key).exists()

    def drop_history(self, key: str) -> None:
        """A rename leaves no earlier version."""


def fsync_directory(directory: Path) -> None:
    # A rename is durable only once the directory entry is on disk.
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


# --- S3 and S3-compatible stores -------------------------------------------------------------


class S3Store:
    """Objects in an S3 bucket under a prefix, through boto3 (any S3-compatible store with
    `endpoint_url`: MinIO, Ceph, Garage, ...)."""

    def __init__(self, bucket: str, prefix: str, endpoint_url: str | None = None) -> None:
        self.bucket = bucket
        self.prefix = prefix
        self.url = f"s3://{bucket}/{prefix}".rstrip("/")
        self.client = s3_client(endpoint_url)

    def object_key(self, key: str) -> str:
        relative = checked_key(key).as_posix()
        return f"{self.prefix}/{relative}" if self.prefix else relative

    def location(self, key: str) -> str:
        return f"s3://{self.bucket}/{self.object_key(key)}"

    def put(self, key: str, data: bytes) -> None:
        with self._errors("write", key):
            self.client.put_object(Bucket=self.bucket, Key=self.object_key(key), Body=data)

    @contextlib.contextmanager
    def writer(self, key: str) -> Iterator[IO[bytes]]:
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as sink:
            yield sink
            sink.seek(0)
            with self._errors("write", key):
                # A multipart upload: the object exists only once the last part completed.
                self.client.upload_fileobj(sink, self.bucket, self.object_key(key))

    def get(self, key: str) -> bytes:
        with self._errors("read", key):
            answer = self.client.get_object(Bucket=self.bucket, Key=self.object_key(key))
            return answer["Body"].read()

    @contextlib.contextmanager
    def reader(self, key: str) -> Iterator[IO[bytes]]:
        with tempfile.TemporaryFile() as copy:
            with self._errors("read", key):
                self.client.download_fileobj(self.bucket, self.object_key(key), copy)
            copy.seek(0)
            yield copy

    def list(self, prefix: str = "") -> list[str]:
        root = f"{self.prefix}/" if self.prefix else ""
        keys: list[str] = []
        with self._errors("list", prefix or "."):
            pages = self.client.get_paginator("list_objects_v2")
            for page in pages.paginate(Bucket=self.bucket, Prefix=root + prefix):
                keys.extend(item["Key"][len(root) :] for item in page.get("Contents", []))
        return sorted(keys)

    def delete(self, key: str) -> None:
        name = self.object_key(key)
        with self._errors("delete", key):
            versions = stored_versions(self.client, self.bucket, name, markers=True)
            if versions is None:  # a store without versions
                self.client.delete_object(Bucket=self.bucket, Key=name)
                return
            self._delete_versions(key, [{"Key": name, "VersionId": v} for v in versions])

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        name = self.object_key(key)
        with self._errors("check", key):
            try:
                self.client.head_object(Bucket=self.bucket, Key=name)
                return True
            except ClientError as exc:
                if error_code(exc) not in ("404", "NoSuchKey", "NotFound"):
                    raise
            return bool(stored_versions(self.client, self.bucket, name, markers=False))

    def drop_history(self, key: str) -> None:
        name = self.object_key(key)
        with self._errors("delete earlier versions of", key):
            versions = self.client.get_paginator("list_object_versions")
            earlier: builtins.list[ObjectIdentifierTypeDef] = []
            for page in versions.paginate(Bucket=self.bucket, Prefix=name):
                entries = [*page.get("Versions", []), *page.get("DeleteMarkers", [])]
                earlier += [
                    {"Key": name, "VersionId": entry["VersionId"]}
                    for entry in entries
                    if entry["Key"] == name and not entry.get("IsLatest") and "VersionId" in entry
                ]
            self._delete_versions(key, earlier)

    def _delete_versions(self, key: str, versions: builtins.list[ObjectIdentifierTypeDef]) -> None:
        for start in range(0, len(versions), 1000):
            answer = self.client.delete_objects(
                Bucket=self.bucket,
                Delete={"Objects": versions[start : start + 1000], "Quiet": True},
            )
            refused = answer.get("Errors") or []
            if refused:
                codes = sorted({error.get("Code", "error") for error in refused})
                raise StorageError(
                    f"the backup store refused to delete {self.location(key)} "
                    f"({', '.join(codes)}: an object lock or a policy keeps it)"
                )

    @contextlib.contextmanager
    def _errors(self, operation: str, key: str) -> Iterator[None]:
        """botocore's exceptions as one line naming the store, the operation and the code."""
        from boto3.exceptions import Boto3Error
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

        try:
            yield
        except ClientError as exc:
            code = error_code(exc)
            if code in ("404", "NoSuchKey", "NotFound"):
                raise ObjectNotFound(f"no object at {self.location(key)}") from None
            if code == "NoSuchBucket":
                raise StorageError(
                    f"the backup store {self.url} has no bucket {self.bucket!r} (create it, or "
                    "check LEADLINE_BACKUP_URL)"
                ) from None
            raise StorageError(
                f"the backup store refused to {operation} {self.location(key)} ({code}; check "
                "the credentials' permissions on the bucket)"
            ) from None
        except NoCredentialsError:
            raise StorageError(
                f"no AWS credentials for the backup store {self.url} (set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY, or AWS_PROFILE)"
            ) from None
        except (BotoCoreError, Boto3Error) as exc:  # Boto3Error: a failed multipart upload
            raise StorageError(
                f"the backup store {self.url} could not {operation} {self.location(key)} "
                f"({type(exc).__name__}; check LEADLINE_S3_ENDPOINT_URL and the network)"
            ) from None


def stored_versions(client: S3Client, bucket: str, name: str, markers: bool) -> list[str] | None:
    """Version ids stored under exactly `name` (with delete markers if asked), or None when the
    store has no notion of versions."""
    from botocore.exceptions import ClientError

    found: list[str] = []
    try:
        for page in client.get_paginator("list_object_versions").paginate(
            Bucket=bucket, Prefix=name
        ):
            entries = [(v["Key"], v.get("VersionId")) for v in page.get("Versions", [])]
            if markers:
                entries += [(m["Key"], m.get("VersionId")) for m in page.get("DeleteMarkers", [])]
            found += [version for key, version in entries if key == name and version]
    except ClientError as exc:
        if error_code(exc) in NO_VERSIONS:
            return None
        raise
    return found


def error_code(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", "error"))


def s3_client(endpoint_url: str | None) -> S3Client:
    """A client on boto3's standard credential chain. S3-compatible endpoints get path-style
    addressing (`endpoint/bucket/key`), which they all serve."""
    import boto3
    from botocore.config import Config

    config = Config(
        retries={"mode": "standard", "max_attempts": 5},
        s3={"addressing_style": "path" if endpoint_url else "auto"},
    )
    session = boto3.session.Session()
    return session.client("s3", endpoint_url=endpoint_url, config=config)
