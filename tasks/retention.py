"""Scheduled jobs as actors: thin shells that claim the slot's job run, then call a function.

The scheduler (or `leadline schedule run`, or any external cron) only sends
`<job>(scheduled_for)`; the job_runs row for (job, scheduled_for) makes a second message for
the same slot a no-op, so a double firing runs the job once.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import dramatiq

from leadline.logging import get_logger
from models.audit import record_audit
from models.jobruns import claim_job_run, finish_job_run
from tasks.backups import create_backups, expire_backups
from tasks.context import TaskContext, get_context
from tasks.deletion import process_deletions
from tasks.erasure import process_erasures
from tasks.sweeps import purge_inbound, sweep_inbox, sweep_webhooks
from workers.runtime import actor

log = get_logger(__name__)
JobFunction = Callable[[TaskContext, datetime], dict[str, Any]]
QUEUE = "maintenance"
MINUTE_MS = 60_000

JOB_FUNCTIONS: dict[str, JobFunction] = {
    "sweep_inbox": sweep_inbox,
    "sweep_webhooks": sweep_webhooks,
    "create_backups": create_backups,
    "expire_backups": expire_backups,
    "process_deletions": process_deletions,
    "process_erasures": process_erasures,
    "purge_inbound": purge_inbound,
}
# Sweeps run every minute; auditing each quiet run would drown the log in noise.
AUDIT_ONLY_WHEN_BUSY = frozenset({"sweep_inbox", "sweep_webhooks"})
TIME_LIMITS_MS = {"sweep_inbox": MINUTE_MS, "sweep_webhooks": MINUTE_MS}


def run_job(context: TaskContext, job: str, scheduled_for: datetime) -> dict[str, Any] | None:
    """Run `job` for its slot unless that slot already ran. Returns its summary, or None."""
    with context.db.maintenance() as session:
        run_id = claim_job_run(session, job, scheduled_for)
    if run_id is None:
        log.info("job slot already claimed", job=job, scheduled_for=scheduled_for.isoformat())
        return None
    try:
        summary = JOB_FUNCTIONS[job](context, context.clock())
    except Exception as exc:
        with context.db.maintenance() as session:
            finish_job_run(session, run_id, "failed", {"error": type(exc).__name__})
        raise
    with context.db.maintenance() as session:
        finish_job_run(session, run_id, "done", summary)
        if job not in AUDIT_ONLY_WHEN_BUSY or any(summary.values()):
            record_audit(session, "scheduler", f"job.{job}", target=str(run_id), details=summary)
    return summary


def declare_job_actor(job: str) -> dramatiq.Actor[Any, Any]:
    def run_scheduled(scheduled_for: str) -> None:
        run_job(get_context(), job, datetime.fromisoformat(scheduled_for))

    run_scheduled.__name__ = job
    return actor(
        queue_name=QUEUE,
        actor_name=job,
        max_retries=3,
        time_limit=TIME_LIMITS_MS.get(job, 60 * MINUTE_MS),
    )(run_scheduled)


JOB_ACTORS: dict[str, dramatiq.Actor[Any, Any]] = {
    job: declare_job_actor(job) for job in JOB_FUNCTIONS
}
