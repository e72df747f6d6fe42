"""Someone who said STOP is never texted again, until they say START."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import dramatiq
import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from leadline.sandbox import SandboxState
from models.alert_settings import update_program
from models.messaging import Suppression
from models.tables import AuditEntry
from tests.helpers import wait_for
from tests.support.messaging import (
    add_business_number,
    assert_no_duplicates,
    captured_events,
    inbound_sms,
    messages_settled,
    outbound_rows,
    queue_alerts,
    random_phone,
    sent_to,
    states,
)
from tests.support.services import MakeOrg
from tests.support.workers import worker_threads

if TYPE_CHECKING:
    from tasks.context import TaskContext

pytestmark = pytest.mark.integration


def suppressions(context: TaskContext, org_id: Any) -> list[Suppression]:
    with context.db.tenant(org_id) as session:
        return list(session.scalars(select(Suppression)).all())


def processed_inbound(context: TaskContext, org_id: Any, count: int) -> bool:
    from models.tables import InboundEvent

    with context.db.tenant(org_id) as session:
        done = session.scalars(select(InboundEvent).where(InboundEvent.status == "processed")).all()
    return len(done) == count


@pytest.mark.parametrize("body", ["stop", "STOP.", " Stop ", "please stop texting me"])
def test_stop_suppresses_and_the_next_message_is_blocked(
    body: str,
    worker: dramatiq.Worker,
    make_org: MakeOrg,
    context: TaskContext,
    sandbox_state: SandboxState,
) -> None:
    org = make_org()
    person = random_phone()
    with captured_events() as events:
        inbound_sms(context, org.id, person, body)
        wait_for(lambda: suppressions(context, org.id))
    expected_reason = "free_text" if "texting" in body else "keyword"
    assert [(kind, data["opted_out"], data["reason"]) for kind, data in events] == [
        ("optout.changed", True, expected_reason)
    ]

    queue_alerts(context, org.id, person, 1)

    wait_for(lambda: messages_settled(context, org.id, 1))
    assert states(context, org.id) == {"blocked": 1}
    assert sandbox_state.sent() == []
    assert sandbox_state.stats()["requests"] == 0


def test_opt_out_history_is_audited_without_the_number(
    worker: dramatiq.Worker, make_org: MakeOrg, context: TaskContext, sandbox_state: SandboxState
) -> None:
    org = make_org()
    person = random_phone()
    inbound_sms(context, org.id, person, "STOP")
    wait_for(lambda: suppressions(context, org.id))
    inbound_sms(context, org.id, person, "start")
    wait_for(lambda: not suppressions(context, org.id))

    with context.db.tenant(org.id) as session:
        entries = session.scalars(
            select(AuditEntry).where(AuditEntry.action.like("optout.%"))
        ).all()
    assert sorted(entry.action for entry in entries) == ["optout.added", "optout.removed"]
    digits = person[-7:]
    assert all(digits not in f"{entry.target}{entry.details}" for entry in entries)


def test_start_resumes_texts(
    worker: dramatiq.Worker, make_org: MakeOrg, context: TaskContext, sandbox_state: SandboxState
) -> None:
    org = make_org()
    person = random_phone()
    inbound_sms(context, org.id, person, "STOP")
    wait_for(lambda: suppressions(context, org.id))
    queue_alerts(context, org.id, person, 1)
    wait_for(lambda: messages_settled(context, org.id, 1))

    with captured_events() as events:
        inbound_sms(context, org.id, person, "START")
        wait_for(lambda: not suppressions(context, org.id))
    assert [kind for kind, _ in events] == ["optout.changed"]
    queue_alerts(context, org.id, person, 1)

    wait_for(lambda: messages_settled(context, org.id, 2))
    assert states(context, org.id) == {"blocked": 1, "sent": 1}
    assert len(sent_to(sandbox_state, person)) == 1


def test_new_consent_on_a_form_does_not_lift_a_stop(
    client: TestClient,
    worker: dramatiq.Worker,
    make_org: MakeOrg,
    context: TaskContext,
    sandbox_state: SandboxState,
) -> None:
    org = make_org()
    person = "+14155550131"
    with context.db.tenant(org.id) as session:
        update_program(session, org.id, autoreply=True, actor="test")
    inbound_sms(context, org.id, person, "unsubscribe")
    wait_for(lambda: suppressions(context, org.id))

    lead = {"phone": person, "name": "Opted Out", "consent": {"sms": True}}
    assert client.post("/v1/leads", json=lead, headers=org.auth).status_code == 202

    wait_for(lambda: messages_settled(context, org.id, 1))
    assert states(context, org.id) == {"blocked": 1}
    assert sandbox_state.sent() == []


def test_help_reply_has_every_required_part(
    worker: dramatiq.Worker, make_org: MakeOrg, context: TaskContext, sandbox_state: SandboxState
) -> None:
    org = make_org("Acme Roofing")
    business = add_business_number(context, org.id)
    with context.db.tenant(org.id) as session:
        update_program(
            session,
            org.id,
            program="Acme Alerts",
            contact="help@acme.example",
            frequency="up to 4 msgs/month",
            actor="test",
        )
    person = random_phone()

    inbound_sms(context, org.id, person, "help", to=business)

    wait_for(lambda: messages_settled(context, org.id, 1))
    (reply,) = sent_to(sandbox_state, person)
    for part in (
        "Acme Alerts",
        "help@acme.example",
        "up to 4 msgs/month",
        "Msg&data rates may apply",
        "Reply STOP",
    ):
        assert part in reply["body"]
    assert reply["from"] == business
    assert suppressions(context, org.id) == []


def test_stop_while_100_alerts_wait_in_the_queue_blocks_all_of_them(
    broker: dramatiq.Broker, make_org: MakeOrg, context: TaskContext, sandbox_state: SandboxState
) -> None:
    broker.flush_all()
    org = make_org()
    person = random_phone()
    queue_alerts(context, org.id, person, 100)  # enqueued; no worker consumes them yet

    inbound_sms(context, org.id, person, "STOP")
    with worker_threads(broker, queues={"events"}):
        wait_for(lambda: processed_inbound(context, org.id, 1))
    with worker_threads(broker):
        wait_for(lambda: messages_settled(context, org.id, 100))

    assert states(context, org.id) == {"blocked": 100}
    assert sandbox_state.stats()["requests"] == 0
    broker.flush_all()


def test_twilio_21610_records_the_suppression(
    worker: dramatiq.Worker, make_org: MakeOrg, context: TaskContext, sandbox_state: SandboxState
) -> None:
    org = make_org()
    person = random_phone()
    sandbox_state.push_behaviour([{"twilio_error": 21610}], channel="sms", match_to=person)

    with captured_events() as events:
        queue_alerts(context, org.id, person, 1)
        wait_for(lambda: messages_settled(context, org.id, 1))
    assert states(context, org.id) == {"blocked": 1}
    assert [s.reason for s in suppressions(context, org.id)] == ["twilio_21610"]
    assert [kind for kind, _ in events] == ["optout.changed"]

    queue_alerts(context, org.id, person, 1)
    wait_for(lambda: messages_settled(context, org.id, 2))
    assert states(context, org.id) == {"blocked": 2}
    assert sandbox_state.stats()["requests"] == 1
    assert sandbox_state.sent() == []
    assert_no_duplicates(sandbox_state)
    assert [row.last_error_code for row in outbound_rows(context, org.id)] == [
        "21610",
        "suppressed",
    ]
