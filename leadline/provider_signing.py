"""Requests signed the way each provider signs them, with the providers' own code.

Used by `leadline simulate` against a running stack and by the tests. Twilio's
RequestValidator, Stripe's WebhookSignature and standardwebhooks sign here; Meta publishes no
SDK for it, so its HMAC is computed with hmac/hashlib, independently of intake/verify.py.
Pure functions: a secret and the bytes in, headers out.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator, Sequence
from datetime import datetime
from urllib.parse import urlencode, urlsplit, urlunsplit

import stripe
from standardwebhooks.webhooks import Webhook
from twilio.request_validator import RequestValidator

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"


class FormFields:
    """Form fields as a multidict: Twilio signs every value of a repeated field."""

    def __init__(self, pairs: Sequence[tuple[str, str]]) -> None:
        self.pairs = list(pairs)

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys(name for name, _ in self.pairs))

    def __bool__(self) -> bool:
        return bool(self.pairs)

    def getall(self, name: str) -> list[str]:
        return [value for key, value in self.pairs if key == name]


def twilio_form(
    auth_token: str, url: str, params: Sequence[tuple[str, str]]
) -> tuple[bytes, dict[str, str]]:
    """(body, headers) of a form POST to `url` (the full URL Twilio calls, query included)."""
    signature = RequestValidator(auth_token).compute_signature(url, FormFields(params))
    return urlencode(params).encode(), {"X-Twilio-Signature": signature, "Content-Type": FORM}


def twilio_json(auth_token: str, url: str, body: bytes) -> tuple[str, dict[str, str]]:
    """(URL with the `bodySHA256` query value Twilio adds, headers) for a JSON body."""
    validator = RequestValidator(auth_token)
    parts = urlsplit(url)
    body_hash = f"bodySHA256={validator.compute_hash(body.decode())}"
    signed_url = urlunsplit(
        parts._replace(query="&".join(q for q in (parts.query, body_hash) if q))
    )
    signature = validator.compute_signature(signed_url, {})
    return signed_url, {"X-Twilio-Signature": signature, "Content-Type": JSON}


def stripe_headers(secret: str, body: bytes, timestamp: int) -> dict[str, str]:
    """Stripe-Signature (`t=...,v1=...`) as Stripe sends it, `timestamp` in Unix seconds."""
    header = stripe.WebhookSignature.generate_signature_header(
        body.decode(), secret, timestamp=timestamp
    )
    return {"Stripe-Signature": header, "Content-Type": JSON}


def telegram_headers(secret_token: str) -> dict[str, str]:
    """Telegram sends the setWebhook secret_token back verbatim in this header."""
    return {"X-Telegram-Bot-Api-Secret-Token": secret_token, "Content-Type": JSON}


def meta_headers(app_secret: str, body: bytes) -> dict[str, str]:
    """X-Hub-Signature-256: HMAC-SHA256 of the raw body under the app secret."""
    digest = hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()
    return {"X-Hub-Signature-256": f"sha256={digest}", "Content-Type": JSON}


def standard_webhook_headers(secret: str, body: bytes, msg_id: str, at: datetime) -> dict[str, str]:
    """Standard Webhooks (webhook-id, -timestamp, -signature) for signed POST /v1/leads."""
    signature = Webhook(secret).sign(msg_id, at, body.decode())
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signature,
        "Content-Type": JSON,
    }
