"""How a webhook is retried, as pure functions: what an attempt's result means, when to try
again (the schedule is the setting LEADLINE_WEBHOOK_RETRY_SCHEDULE, seconds after each failed
try, ±20 % jitter; Retry-After honoured on 429/502/503/504), and when to give up or disable the
endpoint (410 Gone, or failing for LEADLINE_WEBHOOK_DISABLE_AFTER_HOURS). tasks/webhooks/
delivery.py records each attempt and applies what these decide."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime

JITTER = 0.2
RETRY_AFTER_STATUSES = frozenset({429, 502, 503, 504})
MAX_RETRY_AFTER = timedelta(hours=24)
GONE = 410
GONE_REASON = "receiver answered 410 Gone"


@dataclass(frozen=True)
class AttemptResult:
    """What one HTTP try produced. `error_text` is ours (never the receiver's body)."""

    started_at: datetime
    duration_ms: int
    status: int | None = None
    error_class: str | None = None
    error_text: str | None = None
    retry_after: timedelta | None = None

    @property
    def outcome(self) -> str:
        if self.status is None:
            return self.error_class or "error"
        if 200 <= self.status < 300:
            return "delivered"
        if self.status == GONE:
            return "gone"
        return "http_error"

    @property
    def delivered(self) -> bool:
        return self.outcome == "delivered"


def parse_retry_after(value: str | None, now: datetime) -> timedelta | None:
    """Retry-After as delay-seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        delay = timedelta(seconds=int(value))
    else:
        try:
            delay = parsedate_to_datetime(value) - now
        except (TypeError, ValueError, OverflowError):
            return None
    return min(max(delay, timedelta(0)), MAX_RETRY_AFTER)


def honoured_retry_after(status: int | None, header: str | None, now: datetime) -> timedelta | None:
    if status not in RETRY_AFTER_STATUSES:
        return None
    return parse_retry_after(header, now)


def jittered(seconds: float, rng: random.Random | None = None) -> timedelta:
    factor = (rng or random).uniform(1 - JITTER, 1 + JITTER)
    return timedelta(seconds=seconds * factor)


def next_retry_delay(
    result: AttemptResult,
    attempts_in_cycle: int,
    schedule: tuple[float, ...],
    rng: random.Random | None = None,
) -> timedelta | None:
    """How long to wait before the next try, or None when the schedule is exhausted.

    `attempts_in_cycle` counts recorded attempts including this one: after the first failed
    try the first delay of the schedule applies.
    """
    if attempts_in_cycle > len(schedule):
        return None
    if result.retry_after is not None:
        return result.retry_after
    return jittered(schedule[attempts_in_cycle - 1], rng)


@dataclass(frozen=True)
class AfterFailure:
    """What a failed attempt leads to: the endpoint disabled (with why), another try after
    `retry_in`, or neither (the schedule is exhausted: the delivery has failed)."""

    disable_reason: str | None = None
    retry_in: timedelta | None = None


def after_failure(
    result: AttemptResult,
    attempts_in_cycle: int,
    failing_since: datetime,
    schedule: tuple[float, ...],
    disable_after: timedelta,
    rng: random.Random | None = None,
) -> AfterFailure:
    """`failing_since`: when the endpoint's current run of failures began (this attempt's
    start if it is the first)."""
    if result.outcome == "gone":
        return AfterFailure(disable_reason=GONE_REASON)
    if result.started_at - failing_since >= disable_after:
        hours = disable_after.total_seconds() / 3600
        return AfterFailure(disable_reason=f"failing for {hours:g} hours")
    return AfterFailure(retry_in=next_retry_delay(result, attempts_in_cycle, schedule, rng))
