"""Requests signed the way each provider signs them: the tests' defaults (secrets and public URL)
over leadline.provider_signing, which `leadline simulate` uses too."""

from __future__ import annotations

import hashlib
import json
import time
from datetime import UTC, datetime
from typing import Any

import pytest

from leadline import provider_signing
from tests.support.services import TEST_PROVIDER_SECRETS

pytestmark = pytest.mark.integration

TWILIO_TOKEN = TEST_PROVIDER_SECRETS["twilio_auth_token"]
STRIPE_SECRET = TEST_PROVIDER_SECRETS["stripe_webhook_secret"]
TELEGRAM_SECRET = TEST_PROVIDER_SECRETS["telegram_secret_token"]
META_SECRET = TEST_PROVIDER_SECRETS["meta_app_secret"]
META_VERIFY = TEST_PROVIDER_SECRETS["meta_verify_token"]
PUBLIC_URL = "http://127.0.0.1:8000"  # the settings' LEADLINE_PUBLIC_URL default
FORM = provider_signing.FORM


def twilio_form(
    params: list[tuple[str, str]], path: str, token: str = TWILIO_TOKEN, query: str = ""
) -> tuple[bytes, dict[str, str]]:
    url = PUBLIC_URL + path + (f"?{query}" if query else "")
    return provider_signing.twilio_form(token, url, params)


def twilio_json(
    data: dict[str, Any], path: str, token: str = TWILIO_TOKEN, query: str = ""
) -> tuple[str, bytes, dict[str, str]]:
    """(path with query, body, headers): the body is covered by bodySHA256 in the URL."""
    body = json.dumps(data).encode()
    url = PUBLIC_URL + path + (f"?{query}" if query else "")
    signed_url, headers = provider_signing.twilio_json(token, url, body)
    return signed_url.removeprefix(PUBLIC_URL), body, headers


def stripe_headers(
    body: bytes, secret: str = STRIPE_SECRET, timestamp: int | None = None
) -> dict[str, str]:
    return provider_signing.stripe_headers(secret, body, timestamp or int(time.time()))


def stripe_event(
    kind: str, customer: str, created: int, status: str = "active", event_id: str | None = None
) -> dict[str, Any]:
    obj: dict[str, Any] = {"id": "sub_123", "object": "subscription", "customer": customer}
    if kind.startswith("invoice"):
        obj = {"id": "in_123", "object": "invoice", "customer": customer}
    else:
        obj["status"] = "canceled" if kind.endswith("deleted") else status
    return {
        "id": event_id or f"evt_{hashlib.sha1(f'{kind}{customer}{created}'.encode()).hexdigest()}",
        "object": "event",
        "type": kind,
        "created": created,
        "data": {"object": obj},
    }


def telegram_headers(secret: str = TELEGRAM_SECRET) -> dict[str, str]:
    return provider_signing.telegram_headers(secret)


def telegram_update(update_id: int, chat_id: int, text: str) -> dict[str, Any]:
    return {
        "update_id": update_id,
        "message": {
            "message_id": 1,
            "date": int(time.time()),
            "chat": {"id": chat_id, "type": "private"},
            "from": {"id": chat_id, "is_bot": False, "first_name": "Ada"},
            "text": text,
        },
    }


def meta_headers(body: bytes, secret: str = META_SECRET) -> dict[str, str]:
    return provider_signing.meta_headers(secret, body)


def messenger_body(page_id: str, sender: str, mids_and_texts: list[tuple[str, str]]) -> bytes:
    messaging = [
        {
            "sender": {"id": sender},
            "recipient": {"id": page_id},
            "timestamp": 1,
            "message": {"mid": mid, "text": text},
        }
        for mid, text in mids_and_texts
    ]
    body = {"object": "page", "entry": [{"id": page_id, "time": 1, "messaging": messaging}]}
    return json.dumps(body, ensure_ascii=False).encode()


def whatsapp_body(
    waba_id: str, wa_id: str, mid: str, text: str, name: str, sent: str = "1"
) -> bytes:
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550001111", "phone_number_id": "1098765"},
        "contacts": [{"profile": {"name": name}, "wa_id": wa_id}],
        "messages": [
            {"from": wa_id, "id": mid, "timestamp": sent, "type": "text", "text": {"body": text}}
        ],
    }
    body = {
        "object": "whatsapp_business_account",
        "entry": [{"id": waba_id, "changes": [{"field": "messages", "value": value}]}],
    }
    return json.dumps(body, ensure_ascii=False).encode()


def standard_headers(
    secret: str, body: bytes, org_id: Any, msg_id: str, at: datetime | None = None
) -> dict[str, str]:
    headers = provider_signing.standard_webhook_headers(
        secret, body, msg_id, at or datetime.now(tz=UTC)
    )
    return {**headers, "webhook-org": str(org_id)}
