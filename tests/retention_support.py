"""Helpers for the scheduler and retention tests."""

from __future__ import annotations

import json
import logging
import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Column, DateTime, ForeignKey, LargeBinary, Table, func, select, text
from sqlalchemy.dialects.postgresql import UUID as PG_UUID

from leadline.settings import Settings
from models.base import Base
from models.leads import LeadFields, upsert_lead
from models.retention import tenant_tables
from models.rls import run_all, tenant_table_sql
from models.tables import Organization

NOTES = "test_lead_notes"


def add_lead(context: Any, org_id: uuid.UUID, **fields: Any) -> uuid.UUID:
    with context.db.tenant(org_id) as session:
        cipher = context.keys.cipher(session, org_id)
        lead_id: uuid.UUID = upsert_lead(session, cipher, LeadFields(**fields)).lead.id
    return lead_id


@pytest.fixture
def notes_table(context: Any) -> Iterator[Table]:
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


def add_note(context: Any, table: Table, org_id: uuid.UUID, lead_id: uuid.UUID, body: str) -> None:
    note_id = uuid.uuid4()
    with context.db.tenant(org_id) as session:
        body_ct = context.keys.cipher(session, org_id).encrypt(
            body.encode(), NOTES, "body_ct", note_id
        )
        session.execute(
            table.insert().values(id=note_id, org_id=org_id, lead_id=lead_id, body_ct=body_ct)
        )


def org_row_counts(context: Any, org_id: uuid.UUID) -> dict[str, int]:
    """Rows of the org in every tenant table, and its organisations row."""
    counts: dict[str, int] = {}
    with context.db.maintenance() as session:
        for table in tenant_tables():
            query = select(func.count()).select_from(table).where(table.c.org_id == org_id)
            counts[table.name] = session.scalar(query) or 0
        org = select(func.count()).select_from(Organization).where(Organization.id == org_id)
        counts["organizations"] = session.scalar(org) or 0
    return counts


def cli_env(settings: Settings) -> dict[str, str]:
    assert settings.leadline_master_keys is not None
    return {
        **os.environ,
        "LEADLINE_ENV": "test",
        "LEADLINE_DATABASE_URL": str(settings.leadline_database_url),
        "LEADLINE_REDIS_URL": str(settings.leadline_redis_url),
        "LEADLINE_REDIS_NAMESPACE": settings.leadline_redis_namespace,
        "LEADLINE_MASTER_KEYS": settings.leadline_master_keys.get_secret_value(),
        "LEADLINE_BACKUP_DIR": settings.leadline_backup_dir,
        "LEADLINE_STATE_DIR": settings.leadline_state_dir,
        "LEADLINE_LOG_LEVEL": "WARNING",
    }


@pytest.fixture
def cli(context: Any, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Run `leadline ...` in this process with typer's CliRunner, against the test services.

    Commands reuse the task context this process already has (the test's); whatever a
    command changes (broker, context, logging) is put back afterwards.
    """
    import dramatiq
    from typer.testing import CliRunner

    from leadline.cli import app
    from leadline.settings import get_settings
    from tasks.context import get_context, set_context
    from workers.runtime import install_broker

    for name, value in cli_env(settings).items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    broker = dramatiq.get_broker()
    root = logging.getLogger()
    saved_logging = (root.handlers[:], root.level)
    runner = CliRunner()

    def invoke(*args: str) -> Any:
        result = runner.invoke(app, [*args, "--json"])
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout.strip().splitlines()[-1])

    try:
        yield invoke
    finally:
        if get_context() is not context:
            get_context().db.dispose()
        set_context(context)
        install_broker(broker)
        get_settings.cache_clear()
        root.handlers[:], _ = saved_logging
        root.setLevel(saved_logging[1])
