"""`leadline schedule list`: every job with its cron, last run and next slot."""

from __future__ import annotations

from datetime import datetime
from typing import TypedDict

from models.jobruns import last_runs
from scheduler.jobs import next_slot
from tasks.context import TaskContext
from tasks.jobs import JOBS


class JobStatus(TypedDict):
    job: str
    cron: str
    last_slot: str | None
    last_status: str | None
    last_finished: str | None
    next_slot: str


def job_statuses(context: TaskContext, now: datetime) -> list[JobStatus]:
    with context.db.maintenance() as session:
        runs = last_runs(session)
    statuses: list[JobStatus] = []
    for job in JOBS:
        run = runs.get(job.name)
        statuses.append(
            {
                "job": job.name,
                "cron": job.cron,
                "last_slot": run.scheduled_for.isoformat() if run else None,
                "last_status": run.status if run else None,
                "last_finished": run.finished_at.isoformat() if run and run.finished_at else None,
                "next_slot": next_slot(job.cron, now).isoformat(),
            }
        )
    return statuses
