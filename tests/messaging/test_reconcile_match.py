"""What counts as the provider's copy of an `unknown` SMS."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from models.outbound_messages import UnknownMessage
from tasks.providers import ProviderMessage
from tasks.reconcile import is_match

pytestmark = pytest.mark.unit

CALLED = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
WINDOW = (CALLED - timedelta(minutes=2), CALLED + timedelta(seconds=15, minutes=2))
MESSAGE = UnknownMessage(
    id=uuid.uuid4(),
    org_id=uuid.uuid4(),
    channel="sms",
    purpose="lead_autoreply",
    recipient="+14155550100",
    body="Thanks for contacting Roofs!",
    sender="+15005550006",
    attempt=1,
    called_at=CALLED,
)
LISTED = ProviderMessage("SM1", "+14155550100", "+15005550006", MESSAGE.body, CALLED)


def test_same_numbers_body_and_time_match() -> None:
    assert is_match(MESSAGE, LISTED, WINDOW)


@pytest.mark.parametrize(
    "listed",
    [
        replace(LISTED, body=MESSAGE.body + " "),
        replace(LISTED, sender="+15005550007"),
        replace(LISTED, to="+14155550101"),
        replace(LISTED, created_at=None),
        replace(LISTED, created_at=CALLED - timedelta(minutes=3)),
        replace(LISTED, created_at=CALLED + timedelta(minutes=3)),
    ],
)
def test_anything_else_is_not_this_message(listed: ProviderMessage) -> None:
    assert not is_match(MESSAGE, listed, WINDOW)


def test_only_alerts_may_be_sent_again() -> None:
    assert replace(MESSAGE, purpose="owner_alert").may_resend
    assert replace(MESSAGE, purpose="reply_alert").may_resend
    assert not any(
        replace(MESSAGE, purpose=p).may_resend for p in ("lead_autoreply", "help_reply", "campaign")
    )
