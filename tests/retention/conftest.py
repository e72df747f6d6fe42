"""Fixtures of the retention tests: a lead-linked table of one test's own, a database a test
may drop, the CLI run in this process, and an S3-compatible server (moto's server mode)
started on loopback by the tests themselves, with credentials in the standard AWS variables
and settings and task contexts whose backups live in a fresh bucket on it."""

from __future__ import annotations

import logging
import os
import tempfile
import uuid
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import dramatiq
import pytest
from sqlalchemy import Column, DateTime, ForeignKey, LargeBinary, Table, func, text
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.engine import make_url

from leadline.settings import Settings
from models.base import Base
from models.rls import run_all, tenant_table_sql
from tests.support.processes import child_env
from tests.support.restore import CliResult, ScratchDatabase
from tests.support.retention import NOTES
from tests.support.s3 import (
    AwsCredentials,
    Bucket,
    backups_in,
    context_with,
    make_bucket,
    raw_client,
)

if TYPE_CHECKING:
    from tasks.context import TaskContext


@pytest.fixture
def notes_table(context: TaskContext) -> Iterator[Table]:
    """A lead-linked tenant table (like conversation messages), present for one test only."""
    table = Table(
        NOTES,
        Base.metadata,
        Column("id", PG_UUID(as_uuid=True), primary_key=True),
        Column("org_id", PG_UUID(as_uuid=True), nullable=False),
        Column("lead_id", PG_UUID(as_uuid=True), ForeignKey("leads.id"), nullable=False),
        Column("body_ct", LargeBinary),
        Column("created_at", DateTime(timezone=True), server_default=func.now()),
    )
    engine = context.db.owner_engine
    with engine.begin() as connection:
        table.create(connection)
        run_all(lambda sql: connection.execute(text(sql)), tenant_table_sql(NOTES))
    yield table
    with engine.begin() as connection:
        table.drop(connection)
    Base.metadata.remove(table)


@pytest.fixture
def scratch_database(settings: Settings, database_url: str) -> Iterator[ScratchDatabase]:
    url = make_url(database_url)
    name = f"{url.database}_scratch_{uuid.uuid4().hex[:6]}"
    scratch_settings = settings.model_copy(
        update={
            "leadline_database_url": url.set(database=name).render_as_string(hide_password=False),
            "leadline_backup_dir": tempfile.mkdtemp(prefix="leadline-dr-backups-"),
        }
    )
    scratch = ScratchDatabase(
        url.set(database="postgres").render_as_string(hide_password=False), name, scratch_settings
    )
    scratch.create()
    yield scratch
    scratch.drop()


@pytest.fixture
def leadline_cli(
    context: TaskContext, broker: dramatiq.Broker, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., CliResult]]:
    """`leadline ARGS` in process with the environment of the given settings (None: the
    test's own context); the test's broker, context and logging are put back afterwards."""
    from typer.testing import CliRunner

    from leadline.cli import app
    from leadline.settings import get_settings
    from tasks.context import clear_context, current_context, set_context
    from workers.runtime import install_broker

    root = logging.getLogger()
    saved_logging = (root.handlers[:], root.level)
    runner = CliRunner()

    def invoke(settings: Settings | None, *args: str, **env: str) -> CliResult:
        # None: the command reuses this process's context (the test's own settings)
        if settings is not None:
            for name, value in {**child_env(settings), **env}.items():
                monkeypatch.setenv(name, value)
            get_settings.cache_clear()
            clear_context()
        try:
            result = runner.invoke(app, list(args))
        finally:
            built = current_context()
            if built is not None and built is not context:
                built.db.dispose()
            set_context(context)
            install_broker(broker)
            get_settings.cache_clear()
            root.handlers[:] = saved_logging[0]
            root.setLevel(saved_logging[1])
        return CliResult(result.exit_code, result.stdout, result.stderr)

    yield invoke


@pytest.fixture
def cli(leadline_cli: Callable[..., CliResult]) -> Callable[..., Any]:
    """`leadline ARGS --json` in this process on the test's context; its JSON, exit code 0."""

    def invoke(*args: str) -> Any:
        result = leadline_cli(None, *args, "--json")
        assert result.exit_code == 0, result.stdout + result.stderr
        return result.json()

    return invoke


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 on 127.0.0.1 and a free port, in a thread of this process."""
    from moto.server import ThreadedMotoServer

    # Its request lines would land in the output of CLI commands run in this process.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def aws_credentials(monkeypatch: pytest.MonkeyPatch) -> AwsCredentials:
    """Credentials only in the standard variables, as production gives them; no profile,
    config file or instance metadata is looked at (nothing leaves loopback)."""
    credentials = AwsCredentials(
        f"AKIA{uuid.uuid4().hex[:16].upper()}", uuid.uuid4().hex * 2, uuid.uuid4().hex * 3
    )
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", credentials.access_key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", credentials.secret_access_key)
    monkeypatch.setenv("AWS_SESSION_TOKEN", credentials.session_token)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return credentials


@pytest.fixture
def bucket(s3_endpoint: str, aws_credentials: AwsCredentials) -> Bucket:
    return make_bucket(raw_client(s3_endpoint))


@pytest.fixture
def s3_settings(settings: Settings, bucket: Bucket, s3_endpoint: str) -> Settings:
    return backups_in(settings, bucket, s3_endpoint)


@pytest.fixture
def s3_context(context: TaskContext, s3_settings: Settings) -> TaskContext:
    """The test's task context (same database and keys) with its backups in the bucket."""
    return context_with(context, s3_settings)


@pytest.fixture
def isolated_s3_context(
    scratch_database: ScratchDatabase, bucket: Bucket, s3_endpoint: str
) -> Iterator[TaskContext]:
    """A migrated database of its own with its backups in the bucket: jobs that sweep every
    row (expiry) see only this test's backups."""
    scratch_database.settings = backups_in(scratch_database.settings, bucket, s3_endpoint)
    scratch_database.migrate()
    context = scratch_database.context()
    yield context
    context.db.dispose()
