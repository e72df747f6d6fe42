"""The schedule: which job fires when, and how one firing is sent."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from croniter import croniter

from leadline.errors import LeadlineError
from tasks.retention import JOB_ACTORS

# Cron expressions in UTC. Hourly and daily jobs are spread so they do not start together.
SCHEDULE: dict[str, str] = {
    "sweep_inbox": "* * * * *",
    "sweep_webhooks": "* * * * *",
    "process_erasures": "5 * * * *",
    "process_deletions": "20 * * * *",
    "create_backups": "0 3 * * *",
    "expire_backups": "30 4 * * *",
    "purge_inbound": "0 5 * * *",
}


class UnknownJob(LeadlineError):
    """No job of that name is scheduled."""


def cron_of(job: str) -> str:
    try:
        return SCHEDULE[job]
    except KeyError:
        raise UnknownJob(f"unknown job {job!r} (jobs: {', '.join(SCHEDULE)})") from None


def latest_slot(cron: str, now: datetime) -> datetime:
    """The most recent slot at or before `now`."""
    probe = now.astimezone(UTC) + timedelta(microseconds=1)
    slot: datetime = croniter(cron, probe).get_prev(datetime)
    return slot


def next_slot(cron: str, after: datetime) -> datetime:
    slot: datetime = croniter(cron, after.astimezone(UTC)).get_next(datetime)
    return slot


def send_job(job: str, slot: datetime) -> Any:
    """One message for one slot; messages carry the job's slot only."""
    return JOB_ACTORS[job].send(slot.astimezone(UTC).isoformat())
