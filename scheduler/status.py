"""`leadline schedule list`: every job with its cron, last run and next slot."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from models.jobruns import last_runs
from scheduler.jobs import SCHEDULE, next_slot
from tasks.context import TaskContext


def job_statuses(context: TaskContext, now: datetime) -> list[dict[str, Any]]:
    with context.db.maintenance() as session:
        runs = last_runs(session)
    statuses = []
    for job, cron in SCHEDULE.items():
        run = runs.get(job)
        statuses.append(
            {
                "job": job,
                "cron": cron,
                "last_slot": run.scheduled_for.isoformat() if run else None,
                "last_status": run.status if run else None,
                "last_finished": run.finished_at.isoformat() if run and run.finished_at else None,
                "next_slot": next_slot(cron, now).isoformat(),
            }
        )
    return statuses
