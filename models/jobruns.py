"""Claiming and finishing scheduled job runs (maintenance scope).

A run is claimed by inserting its (job, slot) row; a second message for the same slot finds
the row and does nothing. A failed run (or one stuck running for hours, its worker killed)
may be claimed again, so Dramatiq's retries still work.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime

from sqlalchemy import func, select, text, update
from sqlalchemy.orm import Session

from models.retention import JobRun

_CLAIM = text(
    """
    INSERT INTO job_runs (id, job, scheduled_for, status, attempts, started_at, details)
    VALUES (:id, :job, :slot, 'running', 1, now(), '{}'::jsonb)
    ON CONFLICT (job, scheduled_for) DO UPDATE
        SET status = 'running', attempts = job_runs.attempts + 1, started_at = now()
        WHERE job_runs.status = 'failed'
           OR (job_runs.status = 'running' AND job_runs.started_at < now() - interval '2 hours')
    RETURNING id
    """
)


def claim_job_run(session: Session, job: str, slot: datetime) -> uuid.UUID | None:
    """The run's id if this caller now owns the slot; None if it ran or is running."""
    claimed: uuid.UUID | None = session.execute(
        _CLAIM, {"id": uuid.uuid4(), "job": job, "slot": slot}
    ).scalar_one_or_none()
    return claimed


def finish_job_run(
    session: Session, run_id: uuid.UUID, status: str, details: Mapping[str, object]
) -> None:
    session.execute(
        update(JobRun)
        .where(JobRun.id == run_id)
        .values(status=status, finished_at=func.now(), details=details)
    )


def slot_was_claimed(session: Session, job: str, slot: datetime) -> bool:
    query = select(JobRun.id).where(JobRun.job == job, JobRun.scheduled_for == slot)
    return session.scalar(query) is not None


def last_runs(session: Session) -> dict[str, JobRun]:
    """The most recent run of every job, by slot."""
    latest = select(JobRun).distinct(JobRun.job).order_by(JobRun.job, JobRun.scheduled_for.desc())
    return {run.job: run for run in session.scalars(latest)}
