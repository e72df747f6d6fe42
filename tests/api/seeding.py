"""Rows for tenant API tests, written straight through the models (no worker needed)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from intake.inbox import store_inbound_event
from models.campaigns import CampaignSpec, create_campaign
from models.connections import ConnectionKind, GrantedAccount, store_connection
from models.leads import LeadFields, upsert_lead
from models.messaging import ConversationMessage
from models.webhook_endpoints import EndpointSpec, UrlPolicy, create_endpoint
from models.webhooks import WebhookDelivery
from tasks.after_commit import AfterCommit
from tasks.domain_events import DomainEvent, publish
from tasks.imports.batches import start_import
from tasks.imports.scan import scan_file

if TYPE_CHECKING:
    from tasks.context import TaskContext

PUBLIC_URL = "https://93.184.215.14/hooks"  # a global address literal: no DNS, never called


def add_lead(context: TaskContext, org_id: uuid.UUID, **fields: Any) -> uuid.UUID:
    with context.db.tenant(org_id) as session:
        cipher = context.keys.cipher(session, org_id)
        return upsert_lead(session, cipher, LeadFields(**fields)).lead.id


def add_inbound_message(
    context: TaskContext, org_id: uuid.UUID, lead_id: uuid.UUID, body: str
) -> None:
    row_id = uuid.uuid4()
    with context.db.tenant(org_id) as session:
        cipher = context.keys.cipher(session, org_id)
        session.add(
            ConversationMessage(
                id=row_id,
                org_id=org_id,
                lead_id=lead_id,
                body_ct=cipher.encrypt_text(body, "conversation_messages", "body_ct", row_id),
            )
        )


def add_endpoint(context: TaskContext, org_id: uuid.UUID) -> uuid.UUID:
    policy = UrlPolicy(allow_http=False, allow_private=False)
    spec = EndpointSpec(PUBLIC_URL, ("lead.created", "lead.updated"))
    with context.db.tenant(org_id) as session:
        cipher = context.keys.cipher(session, org_id)
        return create_endpoint(session, cipher, spec, policy).endpoint_id


def add_delivery(context: TaskContext, org_id: uuid.UUID, lead_id: uuid.UUID) -> uuid.UUID:
    """A `lead.created` delivery to the org's endpoints (left pending: no worker)."""
    with context.db.tenant(org_id) as session:
        cipher = context.keys.cipher(session, org_id)
        data = {"lead_id": str(lead_id), "source": "api"}
        publish(DomainEvent(session, cipher, "lead.created", data, AfterCommit(), context.clock()))
        session.flush()
        query = select(WebhookDelivery.id).where(WebhookDelivery.lead_id == lead_id)
        delivery_id: uuid.UUID = session.scalars(query).one()
        return delivery_id


def add_campaign(context: TaskContext, org_id: uuid.UUID) -> uuid.UUID:
    spec = CampaignSpec("Spring", "Hi {name}", {"consent": "sms"})
    with context.db.tenant(org_id) as session:
        return create_campaign(session, org_id, uuid.uuid4().hex, spec, actor="test").id


def add_import(context: TaskContext, org_id: uuid.UUID) -> uuid.UUID:
    """An import with one rejected row (stored, not written: no worker needed)."""
    content = f"name,phone\r\nAda {uuid.uuid4().hex},not a phone\r\n".encode()
    return start_import(context, org_id, scan_file(content, {}, "test")).id


def add_event(context: TaskContext, org_id: uuid.UUID) -> uuid.UUID:
    payload = {
        "email": "someone@example.com",
        "received_at": datetime.now().astimezone().isoformat(),
    }
    return store_inbound_event(context, org_id, "api", uuid.uuid4().hex, payload).id


@dataclass(frozen=True)
class Seeded:
    """One of everything an `{id}` route can name, in one organisation."""

    lead_id: uuid.UUID
    endpoint_id: uuid.UUID
    delivery_id: uuid.UUID
    campaign_id: uuid.UUID
    event_id: uuid.UUID
    key_prefix: str
    connection_id: uuid.UUID
    import_id: uuid.UUID


def seed_everything(context: TaskContext, org_id: uuid.UUID, key_prefix: str) -> Seeded:
    lead_id = add_lead(context, org_id, name="Ada", phone="+14155550123", email="ada@example.com")
    add_inbound_message(context, org_id, lead_id, "Hello there")
    endpoint_id = add_endpoint(context, org_id)
    return Seeded(
        lead_id,
        endpoint_id,
        add_delivery(context, org_id, lead_id),
        add_campaign(context, org_id),
        add_event(context, org_id),
        key_prefix,
        add_connection(context, org_id),
        add_import(context, org_id),
    )


def add_connection(context: TaskContext, org_id: uuid.UUID) -> uuid.UUID:
    """A Messenger connection with a token no provider issued (nothing here calls Meta)."""
    account = GrantedAccount(ConnectionKind.MESSENGER, uuid.uuid4().hex[:15], "Page", "EAAtest")
    with context.db.tenant(org_id) as session:
        cipher = context.keys.cipher(session, org_id)
        return store_connection(session, cipher, account, "10001", "test", context.clock())
