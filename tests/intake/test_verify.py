"""The provider verifiers as pure functions, signed with the providers' own code."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from datetime import UTC, datetime
from urllib.parse import urlencode

import pytest
import stripe
from standardwebhooks.webhooks import Webhook
from starlette.datastructures import MultiDict
from twilio.request_validator import RequestValidator

from intake.verify import (
    verify_meta,
    verify_meta_handshake,
    verify_standard_webhook,
    verify_stripe,
    verify_telegram,
    verify_twilio,
)
from leadline.errors import VerificationError

pytestmark = pytest.mark.unit

URL = "https://leads.example.com/hooks/twilio/sms"
FORM = "application/x-www-form-urlencoded"


def test_twilio_form_with_repeated_values() -> None:
    params = [("To", "+14155550100"), ("Media", "b"), ("Media", "a"), ("Body", "héllo")]
    signature = RequestValidator("tok").compute_signature(URL, MultiDict(params))
    body = urlencode(params).encode()
    form = verify_twilio("tok", URL, body, FORM, signature)
    assert form is not None and form.getall("Media") == ["b", "a"]
    assert form.first_values()["Body"] == "héllo"
    dropped = urlencode(params[:-2] + params[-1:]).encode()
    for bad in (
        ("tok", URL, dropped, FORM, signature),
        ("other", URL, body, FORM, signature),
        ("tok", URL + "?x=1", body, FORM, signature),
        ("tok", URL, body, FORM, ""),
        ("tok", URL, b"\xff\xfe", FORM, signature),
    ):
        with pytest.raises(VerificationError):
            verify_twilio(*bad)


def test_twilio_json_body_needs_body_sha256() -> None:
    body = json.dumps({"MessageSid": "SM1"})
    validator = RequestValidator("tok")
    url = f"{URL}?bodySHA256={validator.compute_hash(body)}"
    signature = validator.compute_signature(url, {})
    assert verify_twilio("tok", url, body.encode(), "application/json", signature) is None
    with pytest.raises(VerificationError):
        verify_twilio("tok", url, body.encode() + b" ", "application/json", signature)
    with pytest.raises(VerificationError):  # JSON without bodySHA256 is never accepted
        verify_twilio("tok", URL, body.encode(), "application/json", signature)


def test_stripe_tolerance_and_schemes() -> None:
    body = b'{"id": "evt_1"}'
    fresh = stripe.WebhookSignature.generate_signature_header(body.decode(), "whsec_x")
    verify_stripe("whsec_x", body, fresh)
    stale = stripe.WebhookSignature.generate_signature_header(
        body.decode(), "whsec_x", timestamp=int(time.time()) - 301
    )
    future = stripe.WebhookSignature.generate_signature_header(
        body.decode(), "whsec_x", timestamp=int(time.time()) + 600
    )
    for header in (stale, future, fresh.replace("v1=", "v0="), "", "t=1", "garbage", None):
        with pytest.raises(VerificationError):
            verify_stripe("whsec_x", body, header)
    with pytest.raises(VerificationError):
        verify_stripe("whsec_x", b"\xff" + body, fresh)


def test_telegram_secret_token() -> None:
    verify_telegram("s3cret", "s3cret")
    for header in ("s3cre", "s3cret ", "", None, "ß3cret"):
        with pytest.raises(VerificationError):
            verify_telegram("s3cret", header)


def test_meta_signature_over_raw_non_ascii_bytes() -> None:
    body = json.dumps({"text": "naïve café ✨"}, ensure_ascii=False).encode()
    header = "sha256=" + hmac.new(b"app", body, hashlib.sha256).hexdigest()
    verify_meta("app", body, header)
    reencoded = json.dumps({"text": "naïve café ✨"}).encode()  # same JSON, other bytes
    for args in (("app", reencoded, header), ("other", body, header), ("app", body, None)):
        with pytest.raises(VerificationError):
            verify_meta(*args)


def test_meta_handshake() -> None:
    good = {"hub.mode": "subscribe", "hub.verify_token": "vt", "hub.challenge": "12345"}
    assert verify_meta_handshake("vt", good) == "12345"
    for bad in ({"hub.verify_token": "no"}, {"hub.mode": "x"}, {"hub.challenge": "<b>"}):
        with pytest.raises(VerificationError):
            verify_meta_handshake("vt", {**good, **bad})


def test_standard_webhooks_maps_library_errors_to_verification_error() -> None:
    secret = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = b'{"email": "a@example.com"}'
    at = datetime.now(tz=UTC)
    headers = {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(secret).sign("msg_1", at, body.decode()),
    }
    verify_standard_webhook([secret], body, headers)
    verify_standard_webhook(["whsec_" + "A" * 43, secret], body, headers)  # previous secret
    for bad in ("no-comma", "v1,###", "v1,a,b", ""):
        with pytest.raises(VerificationError):
            verify_standard_webhook([secret], body, {**headers, "webhook-signature": bad})
    with pytest.raises(VerificationError):
        verify_standard_webhook([], body, headers)
