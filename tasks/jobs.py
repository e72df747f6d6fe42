"""The scheduled jobs, in one table: name, when (cron, UTC), what runs, its time limit and
whether a quiet run is audited. The scheduler, `leadline schedule run|list` and the ops page
all read it.

Each job is an actor, a thin shell that claims the slot's job run and then calls the job's
function. The scheduler (or `leadline schedule run`, or any external cron) only sends
`<job>(scheduled_for)`; the job_runs row for (job, scheduled_for) makes a second message for
the same slot a no-op, so a double firing runs the job once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import MappingProxyType

import dramatiq

from leadline.errors import LeadlineError
from leadline.logging import get_logger
from models.audit import record_audit
from models.jobruns import claim_job_run, finish_job_run
from tasks.backups import create_backups, expire_backups
from tasks.connections import purge_oauth_states
from tasks.context import TaskContext, get_context
from tasks.deletion import process_deletions
from tasks.erasure import process_erasures
from tasks.sweeps import JobSummary, purge_inbound, sweep_inbox, sweep_webhooks
from workers.runtime import actor

log = get_logger(__name__)
JobFunction = Callable[[TaskContext, datetime], JobSummary]
QUEUE = "maintenance"
MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)


@dataclass(frozen=True)
class Job:
    name: str
    cron: str
    run: JobFunction
    time_limit: timedelta = HOUR
    # Sweeps run every minute: auditing each quiet run would drown the log in noise.
    audit_quiet_runs: bool = True


# Hourly and daily jobs are spread so that they do not start together.
JOBS: tuple[Job, ...] = (
    Job("sweep_inbox", "* * * * *", sweep_inbox, MINUTE, audit_quiet_runs=False),
    Job("sweep_webhooks", "* * * * *", sweep_webhooks, MINUTE, audit_quiet_runs=False),
    Job("process_erasures", "5 * * * *", process_erasures),
    Job("process_deletions", "20 * * * *", process_deletions),
    Job("create_backups", "0 3 * * *", create_backups),
    Job("expire_backups", "30 4 * * *", expire_backups),
    Job("purge_inbound", "0 5 * * *", purge_inbound),
    Job("purge_oauth_states", "40 * * * *", purge_oauth_states),
)
JOBS_BY_NAME: Mapping[str, Job] = MappingProxyType({job.name: job for job in JOBS})


class UnknownJob(LeadlineError):
    """No job of that name is scheduled."""


def get_job(name: str) -> Job:
    try:
        return JOBS_BY_NAME[name]
    except KeyError:
        known = ", ".join(JOBS_BY_NAME)
        raise UnknownJob(f"unknown job {name!r} (jobs: {known})") from None


def run_job(context: TaskContext, job: Job, scheduled_for: datetime) -> JobSummary | None:
    """Run `job` for its slot unless that slot already ran. Returns its summary, or None."""
    with context.db.maintenance() as session:
        run_id = claim_job_run(session, job.name, scheduled_for)
    if run_id is None:
        log.info("job slot already claimed", job=job.name, scheduled_for=scheduled_for.isoformat())
        return None
    try:
        summary = job.run(context, context.clock())
    except Exception as exc:
        with context.db.maintenance() as session:
            finish_job_run(session, run_id, "failed", {"error": type(exc).__name__})
        raise
    with context.db.maintenance() as session:
        finish_job_run(session, run_id, "done", summary)
        if job.audit_quiet_runs or any(summary.values()):
            record_audit(
                session, "scheduler", f"job.{job.name}", target=str(run_id), details=summary
            )
    return summary


def declare_job_actor(job: Job) -> dramatiq.Actor[[str], None]:
    def run_scheduled(scheduled_for: str) -> None:
        run_job(get_context(), job, datetime.fromisoformat(scheduled_for))

    run_scheduled.__name__ = job.name
    time_limit_ms = int(job.time_limit.total_seconds() * 1000)
    return actor(queue_name=QUEUE, actor_name=job.name, max_retries=3, time_limit=time_limit_ms)(
        run_scheduled
    )


JOB_ACTORS: Mapping[str, dramatiq.Actor[[str], None]] = MappingProxyType(
    {job.name: declare_job_actor(job) for job in JOBS}
)
