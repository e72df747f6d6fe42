"""Two schedulers at once fire each job once per slot; a double firing still runs once."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import dramatiq
import pytest
from sqlalchemy import select

from models.db import sqlalchemy_url
from models.retention import JobRun
from scheduler.jobs import send_job
from scheduler.leader import AdvisoryLeader
from scheduler.loop import Scheduler
from tasks.context import TaskContext
from tasks.jobs import JOBS_BY_NAME, Job, get_job
from tests.helpers import wait_for

pytestmark = pytest.mark.integration

JOBS = tuple(JOBS_BY_NAME[job] for job in ("sweep_inbox", "sweep_webhooks", "process_erasures"))
START = datetime(2031, 3, 1, 10, 0, 30, tzinfo=UTC)
HOURS = (timedelta(0), timedelta(hours=1))


class Recording:
    """A scheduler's sender that sends for real and notes what it sent."""

    def __init__(self) -> None:
        self.fired: list[tuple[str, datetime]] = []

    def __call__(self, job: Job, slot: datetime) -> None:
        send_job(job, slot)
        self.fired.append((job.name, slot))


def make_scheduler(context: TaskContext) -> tuple[Scheduler, Recording]:
    leader = AdvisoryLeader(sqlalchemy_url(context.settings.leadline_database_url))
    sent = Recording()
    return Scheduler(context, leader, jobs=JOBS, sender=sent), sent


def tick_together(schedulers: list[Scheduler], now: datetime) -> None:
    barrier = threading.Barrier(len(schedulers))

    def tick(scheduler: Scheduler) -> None:
        barrier.wait()
        scheduler.tick(now)

    threads = [threading.Thread(target=tick, args=(s,)) for s in schedulers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def runs(context: TaskContext) -> list[JobRun]:
    with context.db.maintenance() as session:
        query = select(JobRun).where(JobRun.scheduled_for >= START - timedelta(hours=2))
        return list(session.scalars(query))


def all_done(context: TaskContext, fired: list[tuple[str, datetime]]) -> bool:
    done = {(r.job, r.scheduled_for) for r in runs(context) if r.status == "done"}
    return set(fired) <= done


def test_two_schedulers_fire_each_job_once_per_slot(
    context: TaskContext, worker: dramatiq.Worker, log_lines: Callable[[], list[dict[str, Any]]]
) -> None:
    (first, first_sent), (second, second_sent) = make_scheduler(context), make_scheduler(context)
    try:
        for minute in range(10):
            tick_together([first, second], START + timedelta(minutes=minute))
        fired = first_sent.fired + second_sent.fired
        assert Counter(fired).most_common(1)[0][1] == 1  # nothing sent twice
        assert bool(first_sent.fired) != bool(second_sent.fired)  # exactly one of them led
        wait_for(lambda: all_done(context, fired))

        leader, follower = (first, second) if first_sent.fired else (second, first)
        leader.leader.dispose()  # the leader dies; the follower takes over
        for minute in range(10, 20):
            tick_together([follower], START + timedelta(minutes=minute))
        fired = first_sent.fired + second_sent.fired
        assert Counter(fired).most_common(1)[0][1] == 1
        wait_for(lambda: all_done(context, fired))
    finally:
        first.leader.dispose()
        second.leader.dispose()

    sweeps = sorted(slot for job, slot in fired if job == "sweep_inbox")
    expected = [START.replace(second=0) + timedelta(minutes=m) for m in range(20)]
    assert sweeps == expected  # every slot, none missed across the failover
    # The hourly job: its missed 09:05 slot at start-up, then 10:05.
    erasure_slots = sorted(slot for job, slot in fired if job == "process_erasures")
    assert erasure_slots == [START.replace(hour=9, minute=5, second=0) + h for h in HOURS]

    # A double firing of a slot that already ran (two crons, a retry) runs nothing again.
    slot = expected[3]
    send_job(get_job("sweep_inbox"), slot)
    send_job(get_job("sweep_inbox"), slot)

    def skipped() -> int:
        lines = log_lines()
        return sum(
            1
            for line in lines
            if line.get("event") == "job slot already claimed"
            and line.get("scheduled_for") == slot.isoformat()
        )

    wait_for(lambda: skipped() == 2)
    counts = Counter((r.job, r.scheduled_for) for r in runs(context))
    assert set(counts.values()) == {1}
    run = next(r for r in runs(context) if (r.job, r.scheduled_for) == ("sweep_inbox", slot))
    assert run.attempts == 1 and run.status == "done"
