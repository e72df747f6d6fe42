"""Helpers for the backup and restore tests: an org with every kind of row tied to its leads,
row counts, a second database that a test may drop, and the CLI run in process."""

from __future__ import annotations

import json
import logging
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from intake.inbound import store_inbound_event
from leadline.settings import Settings
from models.leads import LeadFields, blind_indexes
from models.messaging import ConversationMessage
from models.migrate import upgrade
from models.tables import Lead
from models.webhooks import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from tasks.backups import bundled_tables
from tasks.context import TaskContext, build_context
from tasks.erasure import erase_request, request_erasure
from tests.retention_support import add_lead, cli_env


@dataclass(frozen=True)
class Person:
    name: str
    phone: str
    email: str


def seed_person(
    context: TaskContext, org_id: uuid.UUID, endpoint_id: uuid.UUID, who: Person
) -> uuid.UUID:
    """A lead with a conversation message, a webhook delivery with two attempts, and an
    inbound event whose payload names them."""
    lead_id = add_lead(context, org_id, name=who.name, phone=who.phone, email=who.email)
    now = context.clock()
    with context.db.tenant(org_id) as session:
        cipher = context.keys.cipher(session, org_id)
        message_id, delivery_id = uuid.uuid4(), uuid.uuid4()
        body = cipher.encrypt(
            b"is the quote ready?", "conversation_messages", "body_ct", message_id
        )
        session.add(
            ConversationMessage(id=message_id, org_id=org_id, lead_id=lead_id, body_ct=body)
        )
        payload = cipher.encrypt(b"{}", "webhook_deliveries", "payload_ct", delivery_id)
        session.add(
            WebhookDelivery(
                id=delivery_id,
                org_id=org_id,
                endpoint_id=endpoint_id,
                event_id=f"msg_{uuid.uuid4().hex}",
                event_type="lead.created",
                lead_id=lead_id,
                payload_ct=payload,
                state="failed",
                attempt_count=2,
                next_attempt_at=now,
                cycle_started_at=now,
            )
        )
        session.flush()
        for attempt in range(2):
            session.add(
                WebhookAttempt(
                    org_id=org_id,
                    delivery_id=delivery_id,
                    endpoint_id=endpoint_id,
                    started_at=now + timedelta(seconds=attempt),
                    duration_ms=12,
                    outcome="http_error",
                    status_code=503,
                )
            )
    event = {"name": who.name, "phone": who.phone, "received_at": now.isoformat()}
    store_inbound_event(context, org_id, "api", f"evt-{uuid.uuid4()}", event)
    return lead_id


def add_webhook_endpoint(context: TaskContext, org_id: uuid.UUID) -> uuid.UUID:
    endpoint_id = uuid.uuid4()
    with context.db.tenant(org_id) as session:
        cipher = context.keys.cipher(session, org_id)
        secret = cipher.encrypt(b"whsec_test", "webhook_endpoints", "secret_ct", endpoint_id)
        session.add(
            WebhookEndpoint(
                id=endpoint_id,
                org_id=org_id,
                url="https://hooks.example.org/leadline",
                event_types=["lead.created"],
                shared_fields=[],
                secret_ct=secret,
            )
        )
    return endpoint_id


def erase_now(context: TaskContext, org_id: uuid.UUID, lead_id: uuid.UUID) -> None:
    at = context.clock()
    with context.db.tenant(org_id) as session:
        request = request_erasure(session, lead_id, at, timedelta(hours=72), actor="test")
    assert erase_request(context, org_id, request.id, at)


def data_counts(context: TaskContext, org_id: uuid.UUID) -> dict[str, int]:
    """The org's rows in every table a bundle carries (nonzero only)."""
    counts: dict[str, int] = {}
    with context.db.maintenance() as session:
        for table in bundled_tables():
            query = select(func.count()).select_from(table).where(table.c.org_id == org_id)
            counts[table.name] = session.scalar(query) or 0
    return {name: count for name, count in counts.items() if count}


def find_by_phone(context: TaskContext, org_id: uuid.UUID, phone: str) -> Lead | None:
    with context.db.tenant(org_id) as session:
        cipher = context.keys.cipher(session, org_id)
        bidx = blind_indexes(cipher, LeadFields(phone=phone))["phone_bidx"]
        return session.scalars(select(Lead).where(Lead.phone_bidx == bidx)).first()


def lead_names(context: TaskContext, org_id: uuid.UUID) -> set[str | None]:
    """Every lead's name, decrypted with the org's key as stored in the database."""
    with context.db.tenant(org_id) as session:
        cipher = context.keys.cipher(session, org_id)
        leads = session.scalars(select(Lead)).all()
        return {cipher.decrypt_text(lead.name_ct, "leads", "name_ct", lead.id) for lead in leads}


@dataclass
class ScratchDatabase:
    """A database of its own (not the session's shared one) that a test may drop."""

    admin_url: str
    name: str
    settings: Settings

    def create(self) -> None:
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.name}"')

    def drop(self) -> None:
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')

    def context(self) -> TaskContext:
        return build_context(self.settings)

    def migrate(self) -> None:
        context = self.context()
        upgrade(context.db.owner_engine)
        context.db.dispose()


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


@dataclass(frozen=True)
class CliResult:
    exit_code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout.strip().splitlines()[-1])


@pytest.fixture
def leadline_cli(
    context: Any, broker: Any, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., CliResult]]:
    """`leadline ARGS` in process with the environment of the given settings; the test's
    broker, context and logging are put back afterwards."""
    from typer.testing import CliRunner

    from leadline.cli import app
    from leadline.settings import get_settings
    from tasks.context import clear_context, current_context, set_context
    from workers.runtime import install_broker

    root = logging.getLogger()
    saved_logging = (root.handlers[:], root.level)
    runner = CliRunner()

    def invoke(settings: Settings, *args: str, **env: str) -> CliResult:
        for name, value in {**cli_env(settings), **env}.items():
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
