"""Helpers for the email tests: senders, leads with email consent, Postmark's webhooks."""

from __future__ import annotations

import base64
import uuid
from typing import Any

import httpx
from sqlalchemy import func, select
from starlette.testclient import TestClient

from leadline.sandbox import SandboxServer
from models.messaging import Suppression
from models.tables import InboundEvent
from tasks.context import TaskContext
from tests.support.services import TEST_PROVIDER_SECRETS

WEBHOOK_USER = TEST_PROVIDER_SECRETS["postmark_webhook_user"]
WEBHOOK_PASSWORD = TEST_PROVIDER_SECRETS["postmark_webhook_password"]


def distinct_emails(count: int, domain: str = "example.org") -> list[str]:
    run = uuid.uuid4().hex[:8]
    return [f"person{n}.{run}@{domain}" for n in range(count)]


def set_email_from(
    context: TaskContext, org_id: uuid.UUID, address: str = "news@roofs.example"
) -> str:
    from models.orgs import set_email_from as set_from

    with context.db.tenant(org_id) as session:
        stored = set_from(session, org_id, address, actor="test")
    assert stored is not None
    return stored


def make_email_leads(
    context: TaskContext, org_id: uuid.UUID, emails: list[str], consent: bool = True
) -> list[uuid.UUID]:
    from models.leads import LeadFields, upsert_lead

    now = context.clock()
    with context.db.tenant(org_id) as session:
        cipher = context.keys.cipher(session, org_id)
        return [
            upsert_lead(
                session,
                cipher,
                LeadFields(
                    email=email,
                    name=f"Lead {n}",
                    email_consent=consent,
                    consent_text="Send me offers by email" if consent else None,
                    consent_at=now,
                ),
            ).lead.id
            for n, email in enumerate(emails)
        ]


def basic_auth(user: str = WEBHOOK_USER, password: str = WEBHOOK_PASSWORD) -> dict[str, str]:
    encoded = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {encoded}"}


def bounce(email: str, org_id: uuid.UUID, kind: str = "HardBounce", **extra: Any) -> dict[str, Any]:
    """A Postmark bounce webhook as it documents one (fields Leadline does not read included)."""
    return {
        "RecordType": "Bounce",
        "ID": uuid.uuid4().int % 10**15,
        "Type": kind,
        "TypeCode": 1,
        "Name": "Hard bounce",
        "Tag": "",
        "MessageID": str(uuid.uuid4()),
        "Metadata": {"leadline_org": str(org_id)},
        "ServerID": 23,
        "MessageStream": "broadcast",
        "Description": "The server was unable to deliver your message (ex: unknown user).",
        "Details": "smtp;550 5.1.1 The email account that you tried to reach does not exist.",
        "Email": email,
        "From": "news@roofs.example",
        "BouncedAt": "2026-12-02T13:00:00Z",
        "DumpAvailable": False,
        "Inactive": kind == "HardBounce",
        "CanActivate": True,
        "Subject": "Spring check-up",
        **extra,
    }


def post_hook(
    client: TestClient, payload: dict[str, Any], headers: dict[str, str] | None = None
) -> Any:
    return client.post(
        "/hooks/postmark",
        json=payload,
        headers=basic_auth() if headers is None else headers,
    )


def sandbox_emails(sandbox: SandboxServer) -> list[dict[str, Any]]:
    """What the provider sandbox says it sent, over its own HTTP API (GET /sent)."""
    records = httpx.get(f"{sandbox.url}/sent", timeout=5).json()
    return [record for record in records if record["channel"] == "email"]


def suppression_count(context: TaskContext, org_id: uuid.UUID) -> int:
    with context.db.tenant(org_id) as session:
        return int(session.scalar(select(func.count()).select_from(Suppression)) or 0)


def inbound_count(context: TaskContext, org_id: uuid.UUID, status: str | None = None) -> int:
    query = select(func.count()).select_from(InboundEvent)
    if status is not None:
        query = query.where(InboundEvent.status == status)
    with context.db.tenant(org_id) as session:
        return int(session.scalar(query) or 0)
