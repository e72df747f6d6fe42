"""Sweeps and inbound minimisation: re-enqueue work left pending; purge old payloads and the
rejected rows of old CSV imports.

A lost Redis message delays work but never loses it: the row stays pending and a sweep
enqueues it again (the actor is idempotent, keyed by the row id and its state).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, select, update

from leadline.logging import get_logger
from models.imports import purge_errors
from models.tables import InboundEvent, InboundEventStatus
from tasks.after_commit import enqueue_or_defer
from tasks.context import TaskContext
from tasks.imports.batches import sweep_imports
from tasks.inbound_events import process_event
from tasks.reconcile import reconcile_unknown
from tasks.sending import release_due_held, sweep_outbound
from tasks.webhooks.operations import sweep_due_deliveries

log = get_logger(__name__)
MAX_SWEPT_EVENTS = 5_000
# Each re-enqueues rows of its own table left pending and returns how many.
Sweep = Callable[[TaskContext], int]
# Outbound messages left queued or sending; held ones whose quiet hours are over; `unknown`
# messages settled with the provider; CSV imports whose next batch was never enqueued or
# never acknowledged.
INBOX_SWEEPS: tuple[Sweep, ...] = (
    sweep_outbound,
    release_due_held,
    reconcile_unknown,
    sweep_imports,
)
WEBHOOK_SWEEPS: tuple[Sweep, ...] = (sweep_due_deliveries,)
JobSummary = dict[str, int]


def sweep_inbox(context: TaskContext, now: datetime) -> JobSummary:
    """Inbound events pending for too long, then the other inbox sweeps."""
    events = requeue_pending_events(context, now)
    return {"inbound_events": events, **run_sweeps(context, INBOX_SWEEPS)}


def sweep_webhooks(context: TaskContext, now: datetime) -> JobSummary:
    return run_sweeps(context, WEBHOOK_SWEEPS)


def requeue_pending_events(context: TaskContext, now: datetime) -> int:
    cutoff = now - timedelta(seconds=context.settings.leadline_sweep_pending_after_seconds)
    query = (
        select(InboundEvent.org_id, InboundEvent.id)
        .where(InboundEvent.status == InboundEventStatus.PENDING, InboundEvent.received_at < cutoff)
        .order_by(InboundEvent.received_at)
        .limit(MAX_SWEPT_EVENTS)
    )
    with context.db.maintenance() as session:
        stuck = session.execute(query).all()
    return sum(enqueue_or_defer(process_event, str(org), str(event)) for org, event in stuck)


def run_sweeps(context: TaskContext, sweeps: tuple[Sweep, ...]) -> JobSummary:
    """Each sweep runs even if another failed; failures are counted, not hidden."""
    swept, failed = 0, 0
    for sweep in sweeps:
        try:
            swept += sweep(context)
        except Exception as exc:  # one broken sweep must not starve the others
            failed += 1
            log.error("sweep failed", sweep=sweep.__name__, error=type(exc).__name__)
    return {"swept": swept, "failed_sweeps": failed}


def purge_inbound(context: TaskContext, now: datetime) -> JobSummary:
    """Processed payloads older than the window become NULL, in short batches."""
    cutoff = now - timedelta(days=context.settings.leadline_inbound_payload_retention_days)
    processed = and_(
        InboundEvent.status == InboundEventStatus.PROCESSED, InboundEvent.processed_at < cutoff
    )
    # Failed events never get processed_at; they are kept for operators as long, no longer.
    stale_failed = and_(
        InboundEvent.status.not_in([InboundEventStatus.PROCESSED, InboundEventStatus.PENDING]),
        InboundEvent.received_at < cutoff,
    )
    purged = _purge_payloads(context, processed) + _purge_payloads(context, stale_failed)
    return {"payloads_purged": purged, "import_errors_purged": purge_import_errors(context, cutoff)}


def purge_import_errors(context: TaskContext, cutoff: datetime) -> int:
    """The rejected rows (PII) of CSV imports done before `cutoff`, in short batches; the
    import's counts stay, its error CSV keeps only its header."""
    batch = context.settings.leadline_retention_batch_size
    total = 0
    while True:
        with context.db.maintenance() as session:
            purged = purge_errors(session, cutoff, batch)
        total += purged
        if purged < batch:
            return total


def _purge_payloads(context: TaskContext, condition: ColumnElement[bool]) -> int:
    batch = context.settings.leadline_retention_batch_size
    total = 0
    while True:
        ids = (
            select(InboundEvent.id)
            .where(condition, InboundEvent.payload_ct.is_not(None))
            .limit(batch)
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
        with context.db.maintenance() as session:
            result = session.execute(
                update(InboundEvent)
                .where(InboundEvent.id.in_(ids))
                .values(payload_ct=None, request_fingerprint=None)  # derived from the payload
            )
        purged = int(result.rowcount)  # type: ignore[attr-defined]
        total += purged
        if purged < batch:
            return total
