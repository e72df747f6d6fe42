"""What each provider answer does to a message, and that nothing is ever sent twice."""

from __future__ import annotations

import dataclasses
import socket
import uuid
from typing import Any

import dramatiq
import pytest
from starlette.testclient import TestClient

from leadline.sandbox import SandboxState
from models.channels import TelegramChat
from models.outbound_messages import claim_outbound, stale_outbound, start_provider_call
from tasks.context import TaskContext
from tasks.optouts import is_opted_out
from tasks.sending import deliver_outbound, enqueue_send, sweep_outbound
from tests.helpers import wait_for
from tests.support.messaging import (
    add_alert_number,
    assert_no_duplicates,
    captured_events,
    link_chat,
    messages_settled,
    outbound_rows,
    queue_alerts,
    random_phone,
    sent_to,
    states,
    status_callback,
)
from tests.support.services import MakeOrg

pytestmark = pytest.mark.integration


def only_row(context: TaskContext, org_id: uuid.UUID) -> Any:
    (row,) = outbound_rows(context, org_id)
    return row


def test_429_then_200_is_sent_once(
    worker: dramatiq.Worker, make_org: MakeOrg, context: TaskContext, sandbox_state: SandboxState
) -> None:
    org, person = make_org(), random_phone()
    sandbox_state.push_behaviour([{"status": 429}], channel="sms", match_to=person)

    queue_alerts(context, org.id, person, 1)

    wait_for(lambda: messages_settled(context, org.id, 1))
    row = only_row(context, org.id)
    assert (row.state, row.attempts) == ("sent", 2)
    assert len(sent_to(sandbox_state, person)) == 1
    assert sandbox_state.stats()["requests"] == 2


def test_500_three_times_then_200_is_sent_once(
    worker: dramatiq.Worker, make_org: MakeOrg, context: TaskContext, sandbox_state: SandboxState
) -> None:
    org, person = make_org(), random_phone()
    sandbox_state.push_behaviour([{"status": 500}] * 3, channel="sms", match_to=person)

    queue_alerts(context, org.id, person, 1)

    wait_for(lambda: messages_settled(context, org.id, 1))
    row = only_row(context, org.id)
    assert (row.state, row.attempts) == ("sent", 4)
    assert len(sent_to(sandbox_state, person)) == 1
    assert_no_duplicates(sandbox_state)


def test_dropped_connection_after_the_request_is_unknown_and_never_resent(
    worker: dramatiq.Worker, make_org: MakeOrg, context: TaskContext, sandbox_state: SandboxState
) -> None:
    org, person = make_org(), random_phone()
    sandbox_state.push_behaviour([{"drop": "after"}], channel="sms", match_to=person)

    (message_id,) = queue_alerts(context, org.id, person, 1)

    wait_for(lambda: messages_settled(context, org.id, 1))
    assert states(context, org.id) == {"unknown": 1}
    # Every way the message could come round again: a redelivery and the sweeper.
    enqueue_send("sms", org.id, message_id)
    with context.db.maintenance() as session:
        now = context.clock()
        assert message_id not in [row_id for _, row_id, _ in stale_outbound(session, now, now)]
    assert deliver_outbound(context, org.id, message_id) == "skipped"
    assert states(context, org.id) == {"unknown": 1}
    assert len(sent_to(sandbox_state, person)) == 1
    assert sandbox_state.stats()["requests"] == 1

    # Reconciliation settles it from the provider's list (test_reconcile.py), not an operator.
    from tasks.attention import ATTENTION_LISTS

    with context.db.maintenance() as session:
        listed = ATTENTION_LISTS["unknown_sms"](session)
    assert str(message_id) not in [item["id"] for item in listed]


@pytest.mark.parametrize("code", [21211, 21614, 21606, 21617])
def test_invalid_recipient_codes_fail_permanently(
    code: int,
    worker: dramatiq.Worker,
    make_org: MakeOrg,
    context: TaskContext,
    sandbox_state: SandboxState,
) -> None:
    org, person = make_org(), random_phone()
    sandbox_state.push_behaviour([{"twilio_error": code}], channel="sms", match_to=person)

    queue_alerts(context, org.id, person, 1)

    wait_for(lambda: messages_settled(context, org.id, 1))
    row = only_row(context, org.id)
    assert (row.state, row.last_error_code, row.attempts) == ("failed", str(code), 1)
    assert sandbox_state.stats()["requests"] == 1


def test_a_row_found_sending_after_the_provider_call_started_becomes_unknown(
    make_org: MakeOrg, context: TaskContext, sandbox_state: SandboxState
) -> None:
    org, person = make_org(), random_phone()
    (message_id,) = queue_alerts(context, org.id, person, 1, enqueue=False)
    with context.db.tenant(org.id) as session:  # a worker claims, starts the call, then dies
        cipher = context.keys.cipher(session, org.id)
        claim = claim_outbound(session, cipher, message_id, context.clock(), is_opted_out)
        assert claim.outcome == "claimed" and claim.message is not None
    with context.db.tenant(org.id) as session:
        assert (
            start_provider_call(
                session, message_id, claim.message.attempt, context.clock(), is_opted_out
            )
            == "call"
        )

    assert deliver_outbound(context, org.id, message_id) == "unknown"
    assert deliver_outbound(context, org.id, message_id) == "skipped"
    assert sandbox_state.stats()["requests"] == 0


def test_connection_refused_before_sending_goes_back_to_the_queue(
    make_org: MakeOrg, context: TaskContext, sandbox_state: SandboxState
) -> None:
    org, person = make_org(), random_phone()
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    offline = dataclasses.replace(
        context, settings=context.settings.model_copy(update={"twilio_api_base": closed})
    )
    (message_id,) = queue_alerts(context, org.id, person, 1, enqueue=False)

    assert deliver_outbound(offline, org.id, message_id) == "queued"
    row = only_row(context, org.id)
    assert (row.state, row.attempts, row.last_error_code) == ("queued", 1, "connect")
    assert row.next_attempt_at > row.created_at

    wait_for(lambda: deliver_outbound(context, org.id, message_id) == "sent", timeout=5)
    assert len(sent_to(sandbox_state, person)) == 1


def test_sweep_sends_a_row_whose_queue_message_was_lost(
    worker: dramatiq.Worker, make_org: MakeOrg, context: TaskContext, sandbox_state: SandboxState
) -> None:
    org, person = make_org(), random_phone()
    queue_alerts(context, org.id, person, 3, enqueue=False)  # as if Redis lost the messages

    assert sweep_outbound(context, queued_older_than=0) >= 3

    wait_for(lambda: messages_settled(context, org.id, 3))
    assert states(context, org.id) == {"sent": 3}
    # The sweep also sends whatever earlier tests of this process left queued in its
    # database, so the check is on this test's own messages: each sent exactly once.
    bodies = sorted(record["body"] for record in sent_to(sandbox_state, person))
    assert len(bodies) == 3 and len(set(bodies)) == 3, bodies


def test_telegram_429_waits_retry_after_then_sends_once(
    client: TestClient,
    worker: dramatiq.Worker,
    make_org: MakeOrg,
    context: TaskContext,
    sandbox_state: SandboxState,
) -> None:
    org = make_org()
    link_chat(context, org.id, 880001)
    sandbox_state.push_behaviour(
        [{"telegram_error": 429, "retry_after": 1}], channel="telegram", match_to=880001
    )

    client.post("/v1/leads", json={"name": "Tele Gram", "email": "t@example.com"}, headers=org.auth)

    wait_for(lambda: messages_settled(context, org.id, 1))
    row = only_row(context, org.id)
    assert (row.state, row.attempts) == ("sent", 2)
    assert (row.sent_at - row.created_at).total_seconds() >= 1
    assert len(sent_to(sandbox_state, "880001")) == 1


@pytest.mark.parametrize("error", [403, 400])
def test_blocked_bot_or_missing_chat_unlinks_the_chat(
    error: int,
    client: TestClient,
    worker: dramatiq.Worker,
    make_org: MakeOrg,
    context: TaskContext,
    sandbox_state: SandboxState,
) -> None:
    org = make_org()
    chat_row = link_chat(context, org.id, 880002)
    sandbox_state.push_behaviour([{"telegram_error": error}], channel="telegram")

    client.post("/v1/leads", json={"name": "First", "email": "a@example.com"}, headers=org.auth)
    wait_for(lambda: messages_settled(context, org.id, 1))
    client.post("/v1/leads", json={"name": "Second", "email": "b@example.com"}, headers=org.auth)
    wait_for(lambda: len(outbound_rows(context, org.id)) == 1 and processed(context, org.id, 2))

    assert states(context, org.id) == {"failed": 1}
    with context.db.tenant(org.id) as session:
        chat = session.get(TelegramChat, chat_row)
        assert chat is not None and chat.status == "unlinked"
    assert sandbox_state.sent() == []


def processed(context: TaskContext, org_id: uuid.UUID, count: int) -> bool:
    from sqlalchemy import func, select

    from models.tables import InboundEvent

    with context.db.tenant(org_id) as session:
        done = session.scalar(
            select(func.count()).select_from(InboundEvent).where(InboundEvent.status == "processed")
        )
    return done == count


def test_status_callbacks_move_sent_rows_forward_only(
    worker: dramatiq.Worker, make_org: MakeOrg, context: TaskContext, sandbox_state: SandboxState
) -> None:
    org = make_org()
    first, second = random_phone(), random_phone()
    add_alert_number(context, org.id, first)
    queue_alerts(context, org.id, first, 1)
    queue_alerts(context, org.id, second, 1)
    wait_for(lambda: messages_settled(context, org.id, 2))
    delivered_row, undelivered_row = outbound_rows(context, org.id)

    with captured_events() as events:
        status_callback(context, org.id, delivered_row.provider_sid, "delivered")
        status_callback(context, org.id, undelivered_row.provider_sid, "undelivered", "30003")
        wait_for(lambda: processed(context, org.id, 2))
        status_callback(context, org.id, delivered_row.provider_sid, "sent")  # late, older news
        wait_for(lambda: processed(context, org.id, 3))

    by_id = {row.id: row for row in outbound_rows(context, org.id)}
    assert by_id[delivered_row.id].state == "delivered"
    assert by_id[undelivered_row.id].state == "undelivered"
    assert by_id[undelivered_row.id].last_error_code == "30003"
    assert sorted(data["state"] for kind, data in events if kind == "message.status") == [
        "delivered",
        "undelivered",
    ]
