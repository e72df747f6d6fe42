"""Points in time as operators type them: `30s`, `15m`, `1h`, `7d`, `1w` (that long ago) or an
ISO 8601 date or time (UTC unless it says otherwise, `Z` accepted). Every command option that
takes a time (`--since`, `--until`, `--older-than`) reads it here."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from leadline.errors import LeadlineError

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
AGO = re.compile(r"^\s*(\d{1,6})\s*([smhdw])\s*$", re.IGNORECASE)
EXAMPLES = "30s, 15m, 1h, 7d or an ISO 8601 time such as 2025-01-31T12:00Z"


class TimeSpecError(LeadlineError):
    """A time given on the command line could not be understood."""


def parse_moment(value: str, now: datetime, what: str = "time") -> datetime:
    match = AGO.match(value)
    if match:
        seconds = int(match.group(1)) * UNITS[match.group(2).lower()]
        return now - timedelta(seconds=seconds)
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise TimeSpecError(f"{what}: cannot read {value!r} as a time (use {EXAMPLES})") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def format_age(seconds: int) -> str:
    """`42s`, `5m`, `3h`, `2d`: the largest whole unit."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{max(0, seconds)}s"
