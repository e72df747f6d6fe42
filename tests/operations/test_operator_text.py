from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from leadline.commands.dlq import dead_letters_text
from leadline.timespec import TimeSpecError, format_age, parse_moment
from tasks.attention import Listing

pytestmark = pytest.mark.unit

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def test_relative_and_absolute_times() -> None:
    assert parse_moment("30m", NOW) == NOW - timedelta(minutes=30)
    assert parse_moment("2h", NOW) == NOW - timedelta(hours=2)
    assert parse_moment("7d", NOW) == NOW - timedelta(days=7)
    assert parse_moment("1w", NOW) == NOW - timedelta(days=7)
    assert parse_moment("2025-02-01T10:00", NOW) == datetime(2025, 2, 1, 10, tzinfo=UTC)
    assert parse_moment("2025-02-01T10:00+02:00", NOW).utcoffset() == timedelta(hours=2)


@pytest.mark.parametrize("value", ["yesterday", "5 parsecs", "-3d", ""])
def test_unreadable_times_are_refused(value: str) -> None:
    with pytest.raises(TimeSpecError, match="cannot read"):
        parse_moment(value, NOW)


def test_ages_use_the_largest_whole_unit() -> None:
    assert [format_age(s) for s in (5, 120, 7200, 3 * 86400)] == ["5s", "2m", "2h", "3d"]


def test_dlq_list_text_has_the_columns_and_attention_lists() -> None:
    row = {
        "id": "0f6c0c5e-0000-4000-8000-000000000001",
        "actor": "send_sms",
        "error": "ProviderOutage: timeout",
        "age_seconds": 3700,
        "retries": 3,
        "state": "dead",
    }
    attention = [
        Listing("unknown_sms", rows=[{"message_id": "m1", "state": "unknown"}]),
        Listing("disabled_endpoints", rows=[]),
    ]
    text = dead_letters_text([row], attention)
    header, line = text.splitlines()[:2]
    assert header.split() == ["ID", "ACTOR", "ERROR", "AGE", "RETRIES", "STATE"]
    assert line.split()[:2] == [row["id"], "send_sms"] and "1h" in line
    assert "unknown_sms: 1" in text and "disabled_endpoints: nothing" in text
