"""The quiet-hours window: parsing, the bounds, time zones from numbers, the next open
instant across several zones and DST, and which messages it applies to."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import phonenumbers
import pytest

from models.quiet_hours import (
    DEFAULT_WINDOW,
    InvalidQuietHours,
    QuietWindow,
    next_open,
    parse_window,
    quiet_hours_apply,
    recipient_zones,
)

pytestmark = pytest.mark.unit

NEW_YORK, LOS_ANGELES, HONOLULU = "+12125550100", "+12135550101", "+18085550102"


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def test_a_narrower_window_parses_and_prints_back() -> None:
    assert parse_window("09:00-20:00") == QuietWindow(time(9), time(20))
    assert parse_window(" 8:30 - 21:00 ") == QuietWindow(time(8, 30), time(21))
    assert str(parse_window("09:15-19:45")) == "09:15-19:45"
    assert str(DEFAULT_WINDOW) == "08:00-21:00"


@pytest.mark.parametrize(
    "text",
    [
        "07:59-20:00",
        "08:00-21:01",
        "00:00-23:59",
        "20:00-09:00",
        "09:00-09:00",
        "9-20",
        "09:00-25:00",
        "09:60-20:00",
        "",
        "09:00 to 20:00",
    ],
)
def test_a_wider_empty_or_malformed_window_is_refused(text: str) -> None:
    with pytest.raises(InvalidQuietHours):
        parse_window(text)


def test_zones_come_from_the_number() -> None:
    for number in (NEW_YORK, LOS_ANGELES, HONOLULU):
        assert phonenumbers.is_valid_number(phonenumbers.parse(number))
    assert recipient_zones(NEW_YORK) == ("America/New_York",)
    assert recipient_zones("+13105550103") == ("America/Los_Angeles",)
    assert recipient_zones(HONOLULU) == ("Pacific/Honolulu",)
    assert recipient_zones("+19999999999") == ()  # Etc/Unknown
    assert recipient_zones("+80012345678") == ()  # international freephone
    assert recipient_zones("not a number") == ()


def test_next_open_is_now_inside_the_window_and_the_opening_outside() -> None:
    # 2026-12-07: New York is on EST (UTC-5), Los Angeles on PST (UTC-8), Honolulu UTC-10.
    at = utc(2026, 12, 7, 12, 30)  # 07:30 in New York
    assert next_open(("America/New_York",), DEFAULT_WINDOW, at) == utc(2026, 12, 7, 13)
    assert next_open(("America/Los_Angeles",), DEFAULT_WINDOW, at) == utc(2026, 12, 7, 16)
    assert next_open(("Pacific/Honolulu",), DEFAULT_WINDOW, at) == utc(2026, 12, 7, 18)
    inside = utc(2026, 12, 7, 15, 0, 1)
    assert next_open(("America/New_York",), DEFAULT_WINDOW, inside) == inside
    # 21:00 sharp is closed: the next opening is 08:00 the next morning.
    closing = utc(2026, 12, 8, 2)
    assert next_open(("America/New_York",), DEFAULT_WINDOW, closing) == utc(2026, 12, 8, 13)


def test_several_zones_open_only_when_every_one_is_open() -> None:
    zones = ("America/Los_Angeles", "America/New_York")
    at = utc(2026, 12, 7, 13, 30)  # 08:30 in New York, 05:30 in Los Angeles
    assert next_open(zones, DEFAULT_WINDOW, at) == utc(2026, 12, 7, 16)
    evening = utc(2026, 12, 8, 1, 30)  # 20:30 New York, 17:30 Los Angeles: still open
    assert next_open(zones, DEFAULT_WINDOW, evening) == evening
    late = utc(2026, 12, 8, 2, 30)  # 21:30 New York: closed until 08:00 Los Angeles
    assert next_open(zones, DEFAULT_WINDOW, late) == utc(2026, 12, 8, 16)


def test_windows_that_never_overlap_give_no_instant() -> None:
    # Two 13-hour windows always overlap somewhere in a day; three zones 8 hours apart do not.
    assert next_open(("Pacific/Guam", "America/Adak"), DEFAULT_WINDOW, utc(2026, 12, 7)) == utc(
        2026, 12, 7
    )
    spread = ("America/Los_Angeles", "Asia/Shanghai", "Europe/London")
    assert next_open(spread, DEFAULT_WINDOW, utc(2026, 12, 7)) is None
    assert next_open((), DEFAULT_WINDOW, utc(2026, 12, 7)) is None


def test_the_window_follows_daylight_saving_time() -> None:
    # New York springs forward on 2026-03-08: 08:00 is 13:00 UTC before, 12:00 UTC after.
    before = next_open(("America/New_York",), DEFAULT_WINDOW, utc(2026, 3, 7, 6))
    after = next_open(("America/New_York",), DEFAULT_WINDOW, utc(2026, 3, 8, 6))
    assert (before, after) == (utc(2026, 3, 7, 13), utc(2026, 3, 8, 12))


def test_an_org_window_narrows_the_hours() -> None:
    window = parse_window("09:00-20:00")
    at = utc(2026, 12, 7, 13, 30)  # 08:30 in New York
    assert next_open(("America/New_York",), window, at) == utc(2026, 12, 7, 14)
    assert next_open(("America/New_York",), window, utc(2026, 12, 8, 1, 30)) == utc(2026, 12, 8, 14)


def test_what_quiet_hours_apply_to() -> None:
    now = utc(2026, 12, 7, 8)
    assert quiet_hours_apply("sms", "campaign", None, now)
    assert quiet_hours_apply("sms", "reply", None, now)
    assert not quiet_hours_apply("sms", "owner_alert", None, now)
    assert not quiet_hours_apply("sms", "reply_alert", None, now)
    assert not quiet_hours_apply("telegram", "owner_alert", None, now)
    assert not quiet_hours_apply("sms", "help_reply", now - timedelta(minutes=1), now)
    assert not quiet_hours_apply("sms", "reply", now - timedelta(hours=24), now)
    assert quiet_hours_apply("sms", "reply", now - timedelta(hours=24, seconds=1), now)
    assert quiet_hours_apply("sms", "lead_autoreply", now - timedelta(days=2), now)
