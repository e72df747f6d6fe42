"""Helpers for the backup and restore tests: an org with every kind of row tied to its leads,
row counts, a second database that a test may drop, and the CLI run in process."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import psycopg
from sqlalchemy import func, select

from intake.inbox import store_inbound_event
from leadline.settings import Settings
from models.leads import LeadFields, blind_indexes
from models.messaging import ConversationMessage
from models.migrate import upgrade
from models.orgs import create_organization
from models.tables import Lead
from models.webhooks import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from tasks.backups import bundled_tables, create_backups
from tasks.context import TaskContext, build_context
from tasks.erasure import erase_request, request_erasure
from tests.support.retention import add_lead
from tests.support.services import MakeOrg, Org


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


def seeded_org(
    context: TaskContext, make_org: MakeOrg, people: tuple[Person, ...]
) -> tuple[Org, list[uuid.UUID]]:
    """A new org with a webhook endpoint, and a lead seeded (seed_person) for each of `people`."""
    org = make_org()
    endpoint = add_webhook_endpoint(context, org.id)
    return org, [seed_person(context, org.id, endpoint, who) for who in people]


@dataclass(frozen=True)
class Disaster:
    """Three orgs backed up, as the disaster-recovery tests stage them: what `kept` and
    `other` hold (their rows and lead names) is what a restore must bring back."""

    kept: uuid.UUID
    other: uuid.UUID
    doomed: uuid.UUID
    counts: dict[uuid.UUID, dict[str, int]]
    names: dict[uuid.UUID, set[str | None]]


def stage_disaster(context: TaskContext, ada: Person, bob: Person, cy: Person) -> Disaster:
    """Three orgs, each with `ada` and `bob`; `ada` erased in `kept` before the backups, and
    `cy` (in `other`) erased after the last one, so only the erasure journal knows. Deleting
    `doomed` is left to the test."""
    org_ids = [uuid.uuid4() for _ in range(3)]
    for index, org_id in enumerate(org_ids):
        with context.db.tenant(org_id) as session:
            create_organization(session, context.keyring, org_id, f"Org {index}", actor="test")
    kept, other, doomed = org_ids
    endpoints = {org_id: add_webhook_endpoint(context, org_id) for org_id in org_ids}
    leads = {
        org_id: [seed_person(context, org_id, endpoints[org_id], p) for p in (ada, bob)]
        for org_id in org_ids
    }
    cy_id = seed_person(context, other, endpoints[other], cy)
    erase_now(context, kept, leads[kept][0])
    assert create_backups(context, context.clock())["created"] == 3
    erase_now(context, other, cy_id)
    survivors = (kept, other)
    return Disaster(
        kept,
        other,
        doomed,
        {org_id: data_counts(context, org_id) for org_id in survivors},
        {org_id: lead_names(context, org_id) for org_id in survivors},
    )


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


@dataclass(frozen=True)
class CliResult:
    exit_code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout.strip().splitlines()[-1])
