"""process_event retries transient failures and gives up at once on permanent ones."""

from __future__ import annotations

from typing import Any

import dramatiq
import pytest
from sqlalchemy.exc import OperationalError

from intake.inbox import store_inbound_event
from models.tables import InboundEvent
from tasks import wiring
from tasks.context import TaskContext
from tasks.inbound_events import InboundContext
from tests.helpers import wait_for
from tests.support.services import MakeOrg

pytestmark = [pytest.mark.integration, pytest.mark.both_brokers]
calls: list[str] = []


def flaky_handler(ctx: InboundContext) -> None:
    calls.append(str(ctx.event.id))
    if len(calls) == 1:
        raise OperationalError("SELECT 1", {}, Exception("connection reset"))


def status_of(context: TaskContext, org_id: Any, event_id: Any) -> str | None:
    with context.db.tenant(org_id) as session:
        event = session.get(InboundEvent, event_id)
        return event.status if event else None


def test_transient_failure_is_retried_until_processed(
    context: TaskContext,
    worker: dramatiq.Worker,
    make_org: MakeOrg,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    handlers = {**wiring.INBOUND_HANDLERS, "test_flaky": flaky_handler}
    monkeypatch.setattr(wiring, "INBOUND_HANDLERS", handlers)
    calls.clear()
    org = make_org()
    stored = store_inbound_event(context, org.id, "test_flaky", "flaky-1", {"n": 1})
    wait_for(lambda: status_of(context, org.id, stored.id) == "processed", timeout=20)
    assert calls == [str(stored.id), str(stored.id)]


def test_unknown_source_fails_permanently_without_retries(
    context: TaskContext, worker: dramatiq.Worker, make_org: MakeOrg
) -> None:
    org = make_org()
    stored = store_inbound_event(context, org.id, "no_such_source", "x-1", {"n": 1})
    wait_for(lambda: status_of(context, org.id, stored.id) == "failed")
    with context.db.tenant(org.id) as session:
        event = session.get(InboundEvent, stored.id)
        assert event is not None and event.error == "UnknownEventSource"
