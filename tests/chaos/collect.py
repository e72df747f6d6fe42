"""Reading back what the stack did: the database (owner and tenant sessions, decrypting with
the master key), the sandbox's received SMS, the intake's spool metric and the spool file.

Plaintext (phones, bodies) stays in memory, as digests where a comparison is all that is
needed; nothing read here is printed.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr
from sqlalchemy import func, select

from leadline.settings import Settings
from models.crypto import OrgCipher
from models.leads import decrypt_lead
from models.messaging import OutboundMessage
from models.outbound_messages import TABLE as OUTBOUND
from models.tables import InboundEvent, Lead
from models.webhooks import WebhookDelivery
from tasks.context import TaskContext, build_context
from tasks.inbound_events import decrypt_payload
from tasks.webhooks.payload import decrypt_body
from tests.chaos.checks import (
    LEAD_EVENTS,
    Delivery,
    Outbound,
    ProviderSms,
    StoredEvent,
    StoredLead,
    digest,
    lead_fingerprint,
)

SPOOLED_METRIC = "leadline_events_spooled"


def reader(database_url: str, master_keys: str) -> TaskContext:
    """Owner URL (maintenance sessions) and tenant sessions on the same connection."""
    settings = Settings(
        leadline_database_url=database_url,
        leadline_app_database_url=None,
        leadline_master_keys=SecretStr(master_keys),
    )
    return build_context(settings)


@dataclass
class Backlog:
    """Work the stack still holds; quiescence is all zero (unknown messages excepted)."""

    spooled: int
    pending_events: int
    outbound_waiting: int
    webhooks_waiting: int

    @property
    def settled(self) -> bool:
        return not (
            self.spooled or self.pending_events or self.outbound_waiting or self.webhooks_waiting
        )

    def describe(self) -> str:
        return (
            f"spool {self.spooled}, pending events {self.pending_events}, outbound queued or "
            f"sending {self.outbound_waiting}, webhooks pending or delivering "
            f"{self.webhooks_waiting}"
        )


def spool_count(path: Path) -> int:
    """Read-only: the intake's replayer owns the file."""
    if not path.exists():
        return 0
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        (count,) = conn.execute("SELECT count(*) FROM events").fetchone()
    except sqlite3.OperationalError:
        return 0  # no table yet: the intake never spooled
    finally:
        conn.close()
    return int(count)


def backlog(context: TaskContext, spool: Path) -> Backlog:
    def count(model: Any, *conditions: Any) -> int:
        with context.db.maintenance() as session:
            query = select(func.count()).select_from(model).where(*conditions)
            return int(session.scalar(query) or 0)

    return Backlog(
        spooled=spool_count(spool),
        pending_events=count(InboundEvent, InboundEvent.status == "pending"),
        outbound_waiting=count(OutboundMessage, OutboundMessage.state.in_(("queued", "sending"))),
        webhooks_waiting=count(
            WebhookDelivery, WebhookDelivery.state.in_(("pending", "delivering"))
        ),
    )


def unknown_count(context: TaskContext) -> int:
    with context.db.maintenance() as session:
        query = select(func.count()).where(OutboundMessage.state == "unknown")
        return int(session.scalar(query.select_from(OutboundMessage)) or 0)


def unix(moment: datetime | None) -> float | None:
    return None if moment is None else moment.timestamp()


def stored_event(cipher: OrgCipher, row: InboundEvent) -> StoredEvent:
    lead = lead_fingerprint(decrypt_payload(cipher, row)) if row.source == "api" else None
    return StoredEvent(str(row.id), str(row.org_id), row.source, row.external_id, row.status, lead)


def outbound(cipher: OrgCipher, row: OutboundMessage) -> Outbound:
    def plain(column: str) -> str:
        return cipher.decrypt(getattr(row, column), OUTBOUND, column, row.id).decode()

    return Outbound(
        id=str(row.id),
        org_id=str(row.org_id),
        purpose=row.purpose,
        state=row.state,
        sender=row.sender,
        recipient=plain("recipient_ct"),
        body=digest(plain("body_ct")),
        sid=row.provider_sid,
        called_at=unix(row.provider_call_at),
        code=row.last_error_code,
    )


def delivery(cipher: OrgCipher, row: WebhookDelivery) -> Delivery:
    inbound_event_id = None
    if row.event_type in LEAD_EVENTS:
        data = json.loads(decrypt_body(cipher, row.payload_ct, row.id))["data"]
        inbound_event_id = data.get("inbound_event_id")
    return Delivery(
        str(row.id),
        str(row.org_id),
        str(row.endpoint_id),
        row.event_id,
        row.event_type,
        row.state,
        inbound_event_id,
    )


@dataclass
class Stored:
    events: list[StoredEvent]
    leads: list[StoredLead]
    outbound: list[Outbound]
    outbound_states: dict[str, int]
    deliveries: list[Delivery]


def read_org(context: TaskContext, org_id: uuid.UUID, into: Stored) -> None:
    with context.db.tenant(org_id) as session:
        cipher = context.keys.cipher(session, org_id)
        into.events += [stored_event(cipher, row) for row in session.scalars(select(InboundEvent))]
        into.leads += [
            StoredLead(str(lead.id), str(org_id), decrypt_lead(cipher, lead).phone)
            for lead in session.scalars(select(Lead))
        ]
        for row in session.scalars(select(OutboundMessage)):
            into.outbound_states[row.state] = into.outbound_states.get(row.state, 0) + 1
            if row.channel == "sms":
                into.outbound.append(outbound(cipher, row))
        into.deliveries += [
            delivery(cipher, row) for row in session.scalars(select(WebhookDelivery))
        ]


def read_stored(context: TaskContext, org_ids: Sequence[str]) -> Stored:
    stored = Stored([], [], [], {}, [])
    for org_id in org_ids:
        read_org(context, uuid.UUID(org_id), stored)
    return stored


def provider_sms(sandbox_url: str) -> list[ProviderSms]:
    records = httpx.get(f"{sandbox_url}/sent", timeout=30).json()
    return [
        ProviderSms(
            to=record["to"],
            sender=record.get("from"),
            body=digest(record["body"]),
            sid=record["sid"],
            at=datetime.fromisoformat(record["time"]).timestamp(),
        )
        for record in records
        if record.get("channel") == "sms"
    ]


def spooled_total(intake_url: str) -> int:
    """leadline_events_spooled_total of the intake process (it is never restarted)."""
    text = httpx.get(f"{intake_url}/metrics", timeout=30).text
    return int(
        sum(
            sample.value
            for family in text_string_to_metric_families(text)
            if family.name == SPOOLED_METRIC
            for sample in family.samples
            if sample.name.endswith("_total")
        )
    )
