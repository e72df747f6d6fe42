"""The scheduler process: while it leads, it sends each job once per cron slot.

Followers only retry the leader lock. A new leader fires the latest slot of a job at once if
that slot never ran (a restart at 03:05 still makes the 03:00 backups); job_runs makes any
overlap with the previous leader harmless.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import dramatiq
import redis

from leadline.clock import Clock, utcnow
from leadline.logging import get_logger
from models.jobruns import slot_was_claimed
from scheduler.jobs import latest_slot, next_slot, send_job
from scheduler.leader import AdvisoryLeader
from tasks.context import TaskContext
from tasks.jobs import JOBS, Job
from workers.brokers import LeadlineBroker
from workers.exporter import ProbeAnswer, Probes
from workers.heartbeat import LoopHeartbeat
from workers.readiness import readiness

log = get_logger(__name__)
Sender = Callable[[Job, datetime], object]


@dataclass
class Scheduler:
    context: TaskContext
    leader: AdvisoryLeader
    jobs: tuple[Job, ...] = JOBS
    clock: Clock = utcnow
    sender: Sender = send_job
    # Turned at every pass of `run`, whatever the tick found: the scheduler's /healthz.
    heartbeat: LoopHeartbeat = field(default_factory=LoopHeartbeat)
    _due: dict[Job, datetime] = field(default_factory=dict)

    def tick(self, now: datetime) -> list[tuple[Job, datetime]]:
        """Send every job whose slot has come; returns what was sent."""
        if not self.leader.try_lead():
            self._due.clear()
            return []
        if not self._due:
            self._due = {job: self._first_due(job, now) for job in self.jobs}
        due = [(job, slot) for job, slot in list(self._due.items()) if slot <= now]
        sent = [(job, self._fire(job, slot, now)) for job, slot in due]
        return [(job, slot) for job, slot in sent if slot is not None]

    def _first_due(self, job: Job, now: datetime) -> datetime:
        slot = latest_slot(job.cron, now)
        with self.context.db.maintenance() as session:
            missed = not slot_was_claimed(session, job.name, slot)
        return slot if missed else next_slot(job.cron, slot)

    def _fire(self, job: Job, slot: datetime, now: datetime) -> datetime | None:
        # After a long pause only the latest slot is sent, not every one that was missed.
        slot = max(slot, latest_slot(job.cron, now))
        try:
            self.sender(job, slot)
        except (redis.RedisError, OSError, dramatiq.errors.BrokerError) as exc:
            log.warning("could not send job; retrying", job=job.name, error=type(exc).__name__)
            return None
        self._due[job] = next_slot(job.cron, slot)
        log.info("job sent", job=job.name, scheduled_for=slot.isoformat())
        return slot

    def probes(self, broker: LeadlineBroker, stale_after: float) -> Probes:
        """Alive while the loop turns (leading or following); ready while Postgres and the
        broker answer."""

        def healthz() -> ProbeAnswer:
            liveness = self.heartbeat.liveness(stale_after)
            return liveness.alive, liveness.as_dict()

        def readyz() -> ProbeAnswer:
            report = readiness(self.context.db, broker)
            return report.ready, report.as_dict()

        return Probes(healthz, readyz)

    def run(self, stop: threading.Event, poll_seconds: float) -> None:
        """Tick until `stop` is set; database or broker trouble never ends the loop."""
        try:
            while not stop.is_set():
                self.heartbeat.beat()
                try:
                    self.tick(self.clock())
                except Exception as exc:  # keep scheduling through transient outages
                    log.error("scheduler tick failed", error=type(exc).__name__)
                    self.leader.release()
                    self._due.clear()
                stop.wait(poll_seconds)
        finally:
            self.leader.dispose()
