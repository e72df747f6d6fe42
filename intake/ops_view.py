"""What the ops page shows, gathered from the broker and Postgres. Ids, codes and counts only;
every free-text value still passes through the one redaction function when rendered."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from leadline.jsondata import JsonObject
from leadline.logging import get_logger, redact_text
from leadline.timespec import format_age
from models.db import Database
from models.ops import DeadLetter, DeadLetterState
from models.retention import JobRun
from tasks.attention import Listing, read_attention
from workers.brokers import LeadlineBroker
from workers.dlq import DeadLetterFilter, dead_letter_summary, list_dead_letters
from workers.queues import QueueStats

log = get_logger("leadline.intake.ops")
TEMPLATES = Path(__file__).parent / "templates"
DEAD_LETTER_PAGE_SIZE = 100


@dataclass
class OpsSnapshot:
    queues: list[QueueStats]
    queue_error: str | None
    dead_letters: list[JsonObject]
    dead_letter_counts: dict[str, int]
    attention: list[Listing]
    job_runs: Listing | None


def take_snapshot(db: Database, broker: LeadlineBroker, now: datetime) -> OpsSnapshot:
    queues, queue_error = read_queues(broker)
    with db.maintenance() as session:
        rows = list_dead_letters(session, DeadLetterFilter(limit=DEAD_LETTER_PAGE_SIZE))
        dead_letters = [dead_letter_summary(row, now) for row in rows]
        counts = dead_letter_counts(session)
    return OpsSnapshot(
        queues=queues,
        queue_error=queue_error,
        dead_letters=dead_letters,
        dead_letter_counts=counts,
        attention=read_attention(db),
        job_runs=read_job_runs(db),
    )


def read_queues(broker: LeadlineBroker) -> tuple[list[QueueStats], str | None]:
    try:
        return broker.queue_stats(), None
    except Exception as exc:
        log.warning("queue stats unavailable", error=type(exc).__name__)
        return [], f"unavailable ({type(exc).__name__})"


def dead_letter_counts(session: Session) -> dict[str, int]:
    query = select(DeadLetter.state, func.count()).group_by(DeadLetter.state)
    counts = {DeadLetterState.DEAD: 0, **dict(session.execute(query).tuples().all())}
    return {state: int(count) for state, count in counts.items()}


LAST_JOB_RUNS = (
    select(JobRun.job, JobRun.scheduled_for, JobRun.status, JobRun.attempts, JobRun.finished_at)
    .distinct(JobRun.job)
    .order_by(JobRun.job, JobRun.scheduled_for.desc())
)


def read_job_runs(db: Database) -> Listing | None:
    """The last run of each scheduled job."""
    try:
        with db.maintenance() as session:
            rows = [dict(row) for row in session.execute(LAST_JOB_RUNS).mappings()]
    except Exception as exc:
        log.warning("job runs unavailable", error=type(exc).__name__)
        return Listing("scheduled jobs", error=f"unavailable ({type(exc).__name__})")
    return Listing("scheduled jobs", rows=rows)


def display(value: object) -> str:
    """Jinja filter: every dynamic value on the page, as redacted text."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    return redact_text(str(value))


def template_environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html"], default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["display"] = display
    env.filters["age"] = format_age
    return env


TEMPLATE_ENV = template_environment()


def render(name: str, **values: object) -> str:
    return TEMPLATE_ENV.get_template(name).render(**values)
