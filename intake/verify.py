"""Provider signature checks: pure functions over the raw body and headers.

Each raises VerificationError (never echoing the input) unless the request is authentic. They
run before anything is parsed for use; comparisons are constant time.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Iterable, Iterator, Mapping
from urllib.parse import parse_qs, parse_qsl, urlsplit

import stripe
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from twilio.request_validator import RequestValidator

from leadline.errors import VerificationError
from leadline.jsondata import JsonObject

STRIPE_TOLERANCE_SECONDS = 300


class FormParams:
    """Form fields as a multidict: twilio's validator signs every value of a repeated field."""

    def __init__(self, pairs: Iterable[tuple[str, str]]) -> None:
        self.pairs = list(pairs)

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys(name for name, _ in self.pairs))

    def getall(self, name: str) -> list[str]:
        return [value for key, value in self.pairs if key == name]

    def first_values(self) -> dict[str, str]:
        first: dict[str, str] = {}
        for name, value in self.pairs:
            first.setdefault(name, value)
        return first


def parse_form(body: bytes) -> FormParams:
    """URL-encoded form fields; VerificationError when the bytes are not a form."""
    try:
        text = body.decode("utf-8")
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text))
    except (UnicodeDecodeError, ValueError):
        raise VerificationError("body is not a URL-encoded form") from None
    return FormParams(pairs)


def verify_twilio(
    auth_token: str, url: str, body: bytes, content_type: str, signature: str | None
) -> FormParams | None:
    """Check X-Twilio-Signature over the public URL and the form (or, for JSON bodies, the
    `bodySHA256` query parameter). Returns the form fields, or None for a JSON body."""
    if not signature:
        raise VerificationError("missing X-Twilio-Signature")
    validator = RequestValidator(auth_token)
    if "bodySHA256" in parse_qs(urlsplit(url).query):
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise VerificationError("body is not UTF-8") from None
        if not validator.validate(url, text, signature):
            raise VerificationError("bad Twilio signature")
        return None
    if content_type != "application/x-www-form-urlencoded":
        raise VerificationError("a Twilio JSON body must be signed with bodySHA256")
    form = parse_form(body)
    if not validator.validate(url, form, signature):
        raise VerificationError("bad Twilio signature")
    return form


def verify_stripe(secret: str, body: bytes, header: str | None, now: float | None = None) -> None:
    """Stripe-Signature with an explicit tolerance (stripe checks no age without one), and the
    same tolerance into the future, which stripe does not check at all: a header signed for a
    year ahead would otherwise stay replayable for a year."""
    try:
        stripe.WebhookSignature.verify_header(
            body, header, secret, tolerance=STRIPE_TOLERANCE_SECONDS
        )
    except (stripe.SignatureVerificationError, UnicodeDecodeError, ValueError):
        raise VerificationError("bad Stripe signature") from None
    if stripe_timestamp(header or "") > (now or time.time()) + STRIPE_TOLERANCE_SECONDS:
        raise VerificationError("Stripe signature timestamp is in the future")


def stripe_timestamp(header: str) -> int:
    """The `t=` of a Stripe-Signature header that verify_header accepted (so it is there)."""
    for item in header.split(","):
        name, _, value = item.strip().partition("=")
        if name == "t":
            return int(value)
    raise VerificationError("Stripe signature has no timestamp")


def verify_telegram(secret_token: str, header: str | None) -> None:
    """X-Telegram-Bot-Api-Secret-Token, the secret given to setWebhook."""
    if not header or not hmac.compare_digest(header.encode(), secret_token.encode()):
        raise VerificationError("bad Telegram secret token")


def verify_basic_auth(user: str, password: str, header: str | None) -> None:
    """HTTP basic auth (Postmark's webhooks): both halves compared in constant time, and
    both always compared, so the answer's timing says nothing about which one was wrong."""
    scheme, _, encoded = (header or "").partition(" ")
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        decoded = b""
    given_user, colon, given_password = decoded.partition(b":")
    user_ok = hmac.compare_digest(given_user, user.encode())
    password_ok = hmac.compare_digest(given_password, password.encode())
    if not (scheme.lower() == "basic" and colon and user_ok & password_ok):
        raise VerificationError("bad basic auth credentials")


def meta_signature(app_secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


def verify_meta(app_secret: str, body: bytes, header: str | None) -> None:
    """X-Hub-Signature-256: HMAC-SHA256 of the raw bytes under the app secret."""
    expected = meta_signature(app_secret, body)
    if not header or not hmac.compare_digest(header.strip().encode(), expected.encode()):
        raise VerificationError("bad Meta signature")


def verify_meta_handshake(verify_token: str, params: Mapping[str, str]) -> str:
    """The GET subscription handshake; returns the challenge to answer with."""
    token = params.get("hub.verify_token", "")
    challenge = params.get("hub.challenge", "")
    if params.get("hub.mode") != "subscribe" or not token:
        raise VerificationError("not a subscription handshake")
    if not hmac.compare_digest(token.encode(), verify_token.encode()):
        raise VerificationError("bad Meta verify token")
    if not challenge.isascii() or not challenge.isalnum() or len(challenge) > 128:
        raise VerificationError("malformed challenge")
    return challenge


def verify_standard_webhook(
    secrets: Iterable[str], body: bytes, headers: Mapping[str, str]
) -> None:
    """Standard Webhooks (webhook-id, -timestamp, -signature) under any of the org's secrets.

    The library raises ValueError (not its own error) on malformed signature headers."""
    wanted = {name: headers.get(name, "") for name in STANDARD_WEBHOOK_HEADERS}
    for secret in secrets:
        try:
            Webhook(secret).verify(body, wanted, json_parse=False)
            return
        except (WebhookVerificationError, ValueError, UnicodeDecodeError, TypeError):
            continue
    raise VerificationError("bad webhook signature")


STANDARD_WEBHOOK_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")


def parse_json_object(body: bytes) -> JsonObject:
    """A verified body as a JSON object; ValueError if it is not one."""
    try:
        data = json.loads(body)
    except RecursionError:
        raise ValueError("JSON body nests too deeply") from None
    if not isinstance(data, dict):
        raise ValueError("JSON body is not an object")
    return data
