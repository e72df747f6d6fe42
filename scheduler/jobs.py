"""When each job of the table in tasks/jobs.py is due, and how one firing is sent."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dramatiq
from croniter import croniter

from tasks.jobs import JOB_ACTORS, Job


def latest_slot(cron: str, now: datetime) -> datetime:
    """The most recent slot at or before `now`."""
    probe = now.astimezone(UTC) + timedelta(microseconds=1)
    slot: datetime = croniter(cron, probe).get_prev(datetime)
    return slot


def next_slot(cron: str, after: datetime) -> datetime:
    slot: datetime = croniter(cron, after.astimezone(UTC)).get_next(datetime)
    return slot


def send_job(job: Job, slot: datetime) -> dramatiq.Message[None]:
    """One message for one slot; messages carry the job's slot only."""
    return JOB_ACTORS[job.name].send(slot.astimezone(UTC).isoformat())
