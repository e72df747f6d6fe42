"""Buckets on the backup tests' S3-compatible server, a raw boto3 client to look into them
with (independent of the store code under test), and settings and contexts that use them."""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

from leadline.settings import Settings
from tasks.context import TaskContext

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

PREFIX = "leadline/backups"


@dataclass(frozen=True)
class AwsCredentials:
    access_key_id: str
    secret_access_key: str
    session_token: str


@dataclass(frozen=True)
class Bucket:
    name: str
    client: S3Client

    @property
    def url(self) -> str:
        return f"s3://{self.name}/{PREFIX}"

    def objects(self, under: str = "") -> list[str]:
        """Keys of the current objects under the store's prefix, relative to it."""
        answer = self.client.list_objects_v2(Bucket=self.name, Prefix=f"{PREFIX}/{under}")
        return sorted(item["Key"][len(PREFIX) + 1 :] for item in answer.get("Contents", []))

    def versions(self, under: str = "") -> list[str]:
        """The key of every stored version and delete marker under the store's prefix."""
        answer = self.client.list_object_versions(Bucket=self.name, Prefix=f"{PREFIX}/{under}")
        entries = [*answer.get("Versions", []), *answer.get("DeleteMarkers", [])]
        return sorted(entry["Key"][len(PREFIX) + 1 :] for entry in entries)

    def read(self, key: str) -> bytes:
        return self.client.get_object(Bucket=self.name, Key=f"{PREFIX}/{key}")["Body"].read()

    def write(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.name, Key=f"{PREFIX}/{key}", Body=data)

    def remove(self, key: str) -> None:
        self.client.delete_object(Bucket=self.name, Key=f"{PREFIX}/{key}")


def raw_client(endpoint_url: str) -> S3Client:
    import boto3
    from botocore.config import Config

    config = Config(s3={"addressing_style": "path"})
    return boto3.session.Session().client("s3", endpoint_url=endpoint_url, config=config)


def make_bucket(client: S3Client, *, versioned: bool = False, locked_days: int = 0) -> Bucket:
    """A new bucket; `locked_days`: object lock in compliance mode (nothing can delete an
    object that young, whatever the credentials)."""
    name = f"leadline-test-{uuid.uuid4().hex[:12]}"
    if locked_days:
        client.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
        client.put_object_lock_configuration(
            Bucket=name,
            ObjectLockConfiguration={
                "ObjectLockEnabled": "Enabled",
                "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": locked_days}},
            },
        )
    else:
        client.create_bucket(Bucket=name)
    if versioned:
        client.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    return Bucket(name, client)


def backups_in(settings: Settings, bucket: Bucket, endpoint: str) -> Settings:
    """`settings` with the backup store in `bucket` on the server at `endpoint`."""
    return settings.model_copy(
        update={"leadline_backup_url": bucket.url, "leadline_s3_endpoint_url": endpoint}
    )


def context_with(context: TaskContext, settings: Settings) -> TaskContext:
    """`context` (same database and keys) on other settings: its own backup store."""
    return dataclasses.replace(context, settings=settings, _backups=None)
