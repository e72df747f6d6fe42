"""Quiet hours: the local hours in which a lead may get a message it did not just ask for.

A campaign message, or a reply more than 24 h after the lead's last inbound message, is sent
only while the recipient's local time is inside the org's window (default 08:00-21:00, never
wider). The time zones come from the number (`phonenumbers.timezone`); where a number maps to
several zones the window must be open in every one of them (a local time of day: 10:00 in
Guam on Tuesday and 14:00 in Adak on Monday are one instant, inside both windows). A number
with no known zone (Etc/Unknown), or whose zones' windows never overlap (three zones eight
hours apart), has no safe hour at all: its message fails (code `no_quiet_window`) instead of
being sent.

Alerts to the business's own numbers and chats are never held.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from phonenumbers import timezone as phone_timezones
from sqlalchemy.orm import Session

from leadline.errors import LeadlineError
from models.audit import record_audit
from models.orgs import get_organization

# Alerts to the business's own recipients: the business asked for them, at any hour.
OWN_RECIPIENT_PURPOSES = frozenset({"owner_alert", "reply_alert"})
REPLY_GRACE = timedelta(hours=24)
UNKNOWN_ZONE = "Etc/Unknown"
# How far ahead the next open instant is looked for; a window that does not open within a
# week never will (its zones' windows do not overlap).
HORIZON_DAYS = 8
_WINDOW_TEXT = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")

Interval = tuple[datetime, datetime]


class InvalidQuietHours(LeadlineError):
    """A window that is malformed, empty, or wider than 08:00-21:00."""


@dataclass(frozen=True)
class QuietWindow:
    """The local hours [start, end) in which messages may be sent."""

    start: time
    end: time

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"


WIDEST = QuietWindow(time(8, 0), time(21, 0))
DEFAULT_WINDOW = WIDEST


def parse_window(text: str) -> QuietWindow:
    """`HH:MM-HH:MM`, inside 08:00-21:00. Raises InvalidQuietHours."""
    match = _WINDOW_TEXT.match(text)
    if match is None:
        raise InvalidQuietHours(f"quiet hours must look like 09:00-20:00, not {text!r}")
    hours_start, minutes_start, hours_end, minutes_end = (int(part) for part in match.groups())
    try:
        window = QuietWindow(time(hours_start, minutes_start), time(hours_end, minutes_end))
    except ValueError:
        raise InvalidQuietHours(f"{text!r} is not a time range") from None
    if window.start >= window.end:
        raise InvalidQuietHours(f"quiet hours {window} end before they start")
    if window.start < WIDEST.start or window.end > WIDEST.end:
        raise InvalidQuietHours(f"quiet hours {window} are wider than {WIDEST}")
    return window


def recipient_zones(e164: str) -> tuple[str, ...]:
    """The time zones a number may be in; empty when none is known."""
    try:
        number = phonenumbers.parse(e164)
    except phonenumbers.NumberParseException:
        return ()
    zones = phone_timezones.time_zones_for_number(number)
    return tuple(sorted(zone for zone in zones if zone != UNKNOWN_ZONE))


def next_open(zones: Sequence[str], window: QuietWindow, at: datetime) -> datetime | None:
    """The first instant at or after `at` when the window is open in every zone, or None."""
    if not zones:
        return None
    for start, end in _open_in_all(tuple(zones), window, at.astimezone(UTC).date()):
        if end > at:
            return max(start, at)
    return None


@lru_cache(maxsize=4096)
def _open_in_all(zones: tuple[str, ...], window: QuietWindow, day: date) -> tuple[Interval, ...]:
    intervals = _open_in(zones[0], window, day)
    for zone in zones[1:]:
        intervals = _intersect(intervals, _open_in(zone, window, day))
    return tuple(intervals)


def _open_in(zone_name: str, window: QuietWindow, day: date) -> list[Interval]:
    """The window in one zone, in UTC, for the local days around `day` (UTC date)."""
    try:
        zone = ZoneInfo(zone_name)
    except (ZoneInfoNotFoundError, ValueError):
        return []
    days = (day + timedelta(days=offset) for offset in range(-1, HORIZON_DAYS))
    return [
        (
            datetime.combine(local_day, window.start, zone).astimezone(UTC),
            datetime.combine(local_day, window.end, zone).astimezone(UTC),
        )
        for local_day in days
    ]


def _intersect(first: list[Interval], second: list[Interval]) -> list[Interval]:
    """Both lists are sorted and disjoint; so is the result."""
    result: list[Interval] = []
    i = j = 0
    while i < len(first) and j < len(second):
        start = max(first[i][0], second[j][0])
        end = min(first[i][1], second[j][1])
        if start < end:
            result.append((start, end))
        if first[i][1] < second[j][1]:
            i += 1
        else:
            j += 1
    return result


def quiet_hours_apply(
    channel: str, purpose: str, reply_to_at: datetime | None, at: datetime
) -> bool:
    """Whether a message must wait for the recipient's window: SMS to a lead, unless it
    answers an inbound message of that lead from less than 24 h ago."""
    if channel != "sms" or purpose in OWN_RECIPIENT_PURPOSES:
        return False
    return reply_to_at is None or at - reply_to_at > REPLY_GRACE


def org_window(session: Session, org_id: uuid.UUID) -> QuietWindow:
    """Tenant session: the org's window, or the default."""
    org = get_organization(session, org_id)
    if org.quiet_hours_start is None or org.quiet_hours_end is None:
        return DEFAULT_WINDOW
    return QuietWindow(org.quiet_hours_start, org.quiet_hours_end)


def set_org_window(
    session: Session, org_id: uuid.UUID, window: QuietWindow | None, actor: str = "cli"
) -> QuietWindow:
    """Tenant session. Set the org's window (validated again here), or reset it with None."""
    if window is not None:
        window = parse_window(str(window))
    org = get_organization(session, org_id)
    org.quiet_hours_start = window.start if window else None
    org.quiet_hours_end = window.end if window else None
    effective = window or DEFAULT_WINDOW
    record_audit(
        session,
        actor,
        "org.settings_changed",
        org_id=org_id,
        target=str(org_id),
        details={"quiet_hours": str(effective)},
    )
    return effective
