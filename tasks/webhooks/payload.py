"""Webhook payloads: building, size capping and encryption at rest.

Schema (docs/webhooks.md): {"type", "timestamp", "data"}. `data` holds the event's ids
and codes as published, plus a `lead` object ({"id", "source", "status"} and the lead fields the
endpoint chose to share) when the event concerns a lead.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TypedDict

from leadline.jsondata import JsonObject
from models.crypto import OrgCipher
from models.leads import decrypt_lead
from models.tables import Lead
from tasks.domain_events import DomainEvent

TABLE = "webhook_deliveries"
MAX_PAYLOAD_BYTES = 20_000
MAX_FIELD_CHARS = 2_000


class WebhookPayload(TypedDict):
    """The body of every webhook request (docs/webhooks.md)."""

    type: str
    timestamp: str
    data: JsonObject


def webhook_id(event_id: uuid.UUID) -> str:
    return f"msg_{event_id.hex}"


def timestamp_text(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _shared_value(value: object) -> object:
    if isinstance(value, datetime):
        return timestamp_text(value)
    if isinstance(value, str):
        return value[:MAX_FIELD_CHARS]
    return value


def lead_object(cipher: OrgCipher, lead: Lead, shared: list[str]) -> JsonObject:
    summary: JsonObject = {"id": str(lead.id), "source": lead.source, "status": lead.status}
    if not shared:
        return summary
    view = decrypt_lead(cipher, lead)
    values = {
        "name": view.name,
        "phone": view.phone,
        "email": view.email,
        "message": view.first_message,
        "sms_consent": view.sms_consent,
        "created_at": view.created_at,
    }
    summary.update({field: _shared_value(values[field]) for field in shared})
    return summary


def build_payload(
    event: DomainEvent, lead: Lead | None, shared_fields: Sequence[str]
) -> WebhookPayload:
    data: JsonObject = dict(event.data)
    if lead is not None:
        data["lead"] = lead_object(event.cipher, lead, list(shared_fields))
    return {"type": event.type, "timestamp": timestamp_text(event.now), "data": data}


def encode_payload(payload: WebhookPayload) -> bytes:
    """Compact JSON under 20 KB; shared lead fields are dropped first if it would not fit."""
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    lead = payload["data"].get("lead")
    if len(body) <= MAX_PAYLOAD_BYTES or not isinstance(lead, dict):
        return body
    slim = {key: lead[key] for key in ("id", "source", "status")}
    payload = {**payload, "data": {**payload["data"], "lead": slim, "truncated": True}}
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def encrypt_body(cipher: OrgCipher, body: bytes, delivery_id: uuid.UUID) -> bytes:
    return cipher.encrypt(body, TABLE, "payload_ct", delivery_id)


def decrypt_body(cipher: OrgCipher, payload_ct: bytes, delivery_id: uuid.UUID) -> bytes:
    return cipher.decrypt(payload_ct, TABLE, "payload_ct", delivery_id)
