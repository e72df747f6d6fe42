"""The webhook delivery policy, signatures and payload limits as pure functions."""

from __future__ import annotations

import base64
import json
import random
import uuid
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError
from standardwebhooks import Webhook

from leadline.errors import CryptoError
from leadline.settings import Settings
from leadline.webhook_signature import generate_secret, secret_key, sign, signed_headers
from tasks.webhooks.payload import MAX_PAYLOAD_BYTES, encode_payload
from tasks.webhooks.policy import (
    GONE_REASON,
    AfterFailure,
    AttemptResult,
    after_failure,
    honoured_retry_after,
    next_retry_delay,
    parse_retry_after,
)

pytestmark = pytest.mark.unit

NOW = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
SCHEDULE = Settings().webhook_retry_delays


def failed(status: int | None = 500, retry_after: timedelta | None = None) -> AttemptResult:
    error = None if status else "timeout"
    return AttemptResult(NOW, 10, status=status, error_class=error, retry_after=retry_after)


def test_default_schedule_is_the_documented_one() -> None:
    assert SCHEDULE == (5, 300, 1800, 7200, 18000, 36000, 36000)


FIVE_DAYS = timedelta(hours=120)


def test_410_disables_the_endpoint_whatever_the_schedule_says() -> None:
    assert after_failure(failed(410), 1, NOW, SCHEDULE, FIVE_DAYS) == AfterFailure(GONE_REASON)


def test_failing_for_the_whole_window_disables_and_just_under_it_retries() -> None:
    started = NOW - FIVE_DAYS
    disabled = after_failure(failed(), 3, started, SCHEDULE, FIVE_DAYS)
    assert disabled == AfterFailure(disable_reason="failing for 120 hours")
    retried = after_failure(failed(), 3, started + timedelta(seconds=1), SCHEDULE, FIVE_DAYS)
    assert retried.disable_reason is None and retried.retry_in is not None


def test_a_failure_retries_on_the_schedule_until_it_is_exhausted() -> None:
    rng = random.Random(7)
    first = after_failure(failed(), 1, NOW, SCHEDULE, FIVE_DAYS, rng)
    assert first.retry_in is not None
    assert timedelta(seconds=4) <= first.retry_in <= timedelta(seconds=6)
    assert after_failure(failed(), len(SCHEDULE) + 1, NOW, SCHEDULE, FIVE_DAYS) == AfterFailure()


@pytest.mark.parametrize("attempt", range(1, 8))
def test_each_retry_waits_its_scheduled_delay_within_20_percent(attempt: int) -> None:
    rng = random.Random(attempt)
    for _ in range(50):
        delay = next_retry_delay(failed(), attempt, SCHEDULE, rng)
        assert delay is not None
        expected = SCHEDULE[attempt - 1]
        assert expected * 0.8 <= delay.total_seconds() <= expected * 1.2


def test_schedule_exhausted_after_eight_attempts() -> None:
    assert next_retry_delay(failed(), 8, SCHEDULE) is None
    assert next_retry_delay(failed(None), 8, SCHEDULE) is None


def test_retry_after_replaces_the_schedule() -> None:
    honoured = failed(429, retry_after=timedelta(seconds=42))
    assert next_retry_delay(honoured, 1, SCHEDULE) == timedelta(seconds=42)


OUTCOMES = [(200, "delivered"), (204, "delivered"), (301, "http_error"), (302, "http_error")]
OUTCOMES += [(400, "http_error"), (410, "gone"), (429, "http_error"), (500, "http_error")]


@pytest.mark.parametrize(("status", "outcome"), OUTCOMES)
def test_outcomes(status: int, outcome: str) -> None:
    assert failed(status).outcome == outcome
    assert failed(status).delivered is (outcome == "delivered")


def test_network_failures_are_named_by_class() -> None:
    assert failed(None).outcome == "timeout"


@pytest.mark.parametrize("status", [429, 502, 503, 504])
def test_retry_after_honoured_for_throttling_and_gateway_errors(status: int) -> None:
    assert honoured_retry_after(status, "120", NOW) == timedelta(seconds=120)


@pytest.mark.parametrize("status", [200, 302, 410, 500])
def test_retry_after_ignored_for_other_statuses(status: int) -> None:
    assert honoured_retry_after(status, "120", NOW) is None


def test_retry_after_forms() -> None:
    later = format_datetime(NOW + timedelta(minutes=3), usegmt=True)
    assert parse_retry_after(later, NOW) == timedelta(minutes=3)
    assert parse_retry_after(format_datetime(NOW - timedelta(hours=1), usegmt=True), NOW) == (
        timedelta(0)
    )
    assert parse_retry_after("99999999", NOW) == timedelta(hours=24)
    for unreadable in (None, "", "soon", "-5", "1.5"):
        assert parse_retry_after(unreadable, NOW) is None


@given(st.text(max_size=500), st.integers(min_value=0, max_value=2**33))
def test_signature_matches_the_standard_webhooks_library(body: str, timestamp: int) -> None:
    secret = "whsec_" + base64.b64encode(b"k" * 32).decode()
    theirs = Webhook(secret).sign("msg_1", datetime.fromtimestamp(timestamp, UTC), body)
    assert sign(secret_key(secret), "msg_1", timestamp, body.encode()) == theirs


def test_signed_headers_verify_with_every_listed_secret() -> None:
    old, new = generate_secret(), generate_secret()
    body = b'{"type":"lead.created"}'
    ts = int(datetime.now(UTC).timestamp())
    headers = signed_headers([secret_key(new), secret_key(old)], "msg_abc", ts, body)
    assert len(headers["webhook-signature"].split(" ")) == 2
    for secret in (old, new):
        Webhook(secret).verify(body, headers)


def test_secrets_are_random_and_well_formed() -> None:
    secrets = {generate_secret() for _ in range(20)}
    assert len(secrets) == 20
    for secret in secrets:
        assert secret.startswith("whsec_") and len(secret_key(secret)) == 32
    assert len(secret_key(generate_secret(24))) == 24
    assert len(secret_key(generate_secret(64))) == 64
    for size in (23, 65):
        with pytest.raises(ValueError):
            generate_secret(size)


@pytest.mark.parametrize("bad", ["abc", "whsec_!!!", "whsec_" + base64.b64encode(b"k").decode()])
def test_malformed_secrets_are_refused(bad: str) -> None:
    with pytest.raises(CryptoError):
        secret_key(bad)


def test_payload_over_20_kb_drops_shared_fields_but_keeps_ids() -> None:
    lead: dict[str, Any] = {"id": str(uuid.uuid4()), "source": "api", "status": "new"}
    wide = "\N{GRINNING FACE}" * 2000  # 8,000 bytes of UTF-8 each
    big = {**lead, "name": wide, "message": wide, "email": wide}
    body = encode_payload({"type": "lead.created", "timestamp": "t", "data": {"lead": big}})
    assert len(body) <= MAX_PAYLOAD_BYTES
    data = json.loads(body)["data"]
    assert data == {"lead": lead, "truncated": True}
    fits = encode_payload({"type": "lead.created", "timestamp": "t", "data": {"lead": lead}})
    assert json.loads(fits)["data"] == {"lead": lead}


def test_retry_schedule_setting_is_validated() -> None:
    assert Settings(leadline_webhook_retry_schedule="0.2, 1,3").webhook_retry_delays == (
        0.2,
        1.0,
        3.0,
    )
    for bad in ("1,x", "-1", "inf"):
        with pytest.raises(ValidationError):
            Settings(leadline_webhook_retry_schedule=bad)


def test_url_policy_follows_the_environment() -> None:
    from models.webhook_endpoints import UrlPolicy

    dev = Settings(leadline_env="development", leadline_allow_private_webhook_targets=True)
    prod = Settings(leadline_env="production", leadline_allow_private_webhook_targets=True)
    assert UrlPolicy.from_settings(dev) == UrlPolicy(allow_http=True, allow_private=True)
    assert UrlPolicy.from_settings(prod) == UrlPolicy(allow_http=False, allow_private=False)
    assert UrlPolicy.from_settings(Settings()) == UrlPolicy(allow_http=True, allow_private=False)
