"""GET /metrics: this intake process's series, plus queue depths from the broker and open dead
letters from Postgres, read at scrape time (so they are right whichever process is asked).

In production a scrape needs the ops token as a Bearer header (Prometheus: `authorization:
{credentials: ...}`); a wrong one counts as a failed ops login. Elsewhere it is open."""

from __future__ import annotations

from fastapi import APIRouter, Request
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from sqlalchemy import func, select
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from intake.limits import count_auth_failure
from intake.ops_auth import OpsAuth
from intake.responses import error_response
from leadline.logging import get_logger
from leadline.metrics import DEAD_LETTERS_OPEN, QUEUE_DELAYED, QUEUE_DEPTH, QUEUE_IN_FLIGHT
from models.ops import DeadLetter, DeadLetterState
from tasks.context import TaskContext
from workers.brokers import LeadlineBroker, current_broker

router = APIRouter()
log = get_logger("leadline.intake")


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    context: TaskContext = request.app.state.context
    if not await scrape_allowed(request, context):
        return error_response(401, "operator token required")
    await run_in_threadpool(refresh_gauges, context)
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)


async def scrape_allowed(request: Request, context: TaskContext) -> bool:
    token = context.settings.leadline_ops_token
    if not context.settings.is_production:
        return True
    scheme, _, candidate = request.headers.get("authorization", "").partition(" ")
    bearer = scheme.lower() == "bearer"
    if token is not None and bearer and OpsAuth(token).token_matches(candidate.strip()):
        return True
    await count_auth_failure(request, "ops_login")
    return False


def refresh_gauges(context: TaskContext) -> None:
    """Best effort: a scrape still answers (with stale gauges) when Redis or Postgres is down."""
    try:
        refresh_queue_gauges(current_broker())
    except Exception as exc:
        log.warning("queue gauges not refreshed", error=type(exc).__name__)
    try:
        refresh_dead_letter_gauge(context)
    except Exception as exc:
        log.warning("dead-letter gauge not refreshed", error=type(exc).__name__)


def refresh_queue_gauges(broker: LeadlineBroker) -> None:
    for stats in broker.queue_stats():
        QUEUE_DEPTH.labels(queue=stats.queue).set(stats.waiting)
        QUEUE_DELAYED.labels(queue=stats.queue).set(stats.delayed)
        if stats.in_flight is not None:  # RabbitMQ cannot tell (workers/queues.py)
            QUEUE_IN_FLIGHT.labels(queue=stats.queue).set(stats.in_flight)


def refresh_dead_letter_gauge(context: TaskContext) -> None:
    query = (
        select(DeadLetter.queue, func.count())
        .where(DeadLetter.state == DeadLetterState.DEAD)
        .group_by(DeadLetter.queue)
    )
    with context.db.maintenance() as session:
        counts = dict(session.execute(query).tuples().all())
    DEAD_LETTERS_OPEN.clear()
    for queue, count in counts.items():
        DEAD_LETTERS_OPEN.labels(queue=queue).set(count)
