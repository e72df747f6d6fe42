"""A lost message delays an inbound event but never loses it; old payloads are purged."""

from __future__ import annotations

import uuid
from datetime import timedelta

import dramatiq
import pytest
from sqlalchemy import select, update

from intake.inbox import store_inbound_event
from models.tables import InboundEvent, Lead
from tasks import sweeps
from tasks.context import TaskContext
from tasks.sweeps import purge_inbound, sweep_inbox
from tests.helpers import wait_for
from tests.support.services import MakeOrg

pytestmark = pytest.mark.integration


@pytest.fixture
def inbox_sweep_calls(monkeypatch: pytest.MonkeyPatch) -> list[TaskContext]:
    """One more inbox sweep, beside the outbound-message ones."""
    calls: list[TaskContext] = []

    def count_call(context: TaskContext) -> int:
        calls.append(context)
        return 2

    monkeypatch.setattr(sweeps, "INBOX_SWEEPS", (*sweeps.INBOX_SWEEPS, count_call))
    return calls


def test_sweep_requeues_events_whose_message_was_lost(
    context: TaskContext,
    worker: dramatiq.Worker,
    make_org: MakeOrg,
    inbox_sweep_calls: list[TaskContext],
) -> None:
    org = make_org()
    worker.pause()
    now = context.clock().isoformat()
    payload = {"name": "Lost Message", "phone": "+14155550188", "received_at": now}
    stored = store_inbound_event(context, org.id, "api", "lost-1", payload)
    worker.broker.flush_all()  # Redis lost the message
    worker.resume()

    fresh = sweep_inbox(context, context.clock())
    assert inbox_sweep_calls and fresh["swept"] >= 2
    with context.db.tenant(org.id) as session:
        assert session.get(InboundEvent, stored.id).status == "pending"  # type: ignore[union-attr]

    later = sweep_inbox(context, context.clock() + timedelta(seconds=31))
    assert later["inbound_events"] >= 1

    def lead_exists() -> bool:
        with context.db.tenant(org.id) as session:
            return session.scalars(select(Lead.id)).first() is not None

    wait_for(lead_exists)


def test_purge_inbound_drops_payloads_processed_over_seven_days_ago(
    context: TaskContext, make_org: MakeOrg
) -> None:
    org = make_org()
    now = context.clock()
    ages = {"old": timedelta(days=8), "young": timedelta(days=6)}
    ids: dict[str, uuid.UUID] = {}
    for label, age in ages.items():
        stored = store_inbound_event(context, org.id, "api", label, {"received_at": "x"})
        ids[label] = stored.id
        with context.db.tenant(org.id) as session:
            session.execute(
                update(InboundEvent)
                .where(InboundEvent.id == stored.id)
                .values(status="processed", processed_at=now - age)
            )
    assert purge_inbound(context, now)["payloads_purged"] >= 1
    with context.db.tenant(org.id) as session:
        assert session.get(InboundEvent, ids["old"]).payload_ct is None  # type: ignore[union-attr]
        assert session.get(InboundEvent, ids["young"]).payload_ct is not None  # type: ignore[union-attr]
