"""Fewer stranded messages: a provider call that never started is retried; an `unknown` SMS
is settled by asking Twilio (the sandbox's message list); only the undecidable is left."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import dramatiq
import pytest

from leadline.sandbox import SandboxState
from models.leads import phone_index
from models.outbound_messages import (
    NewOutbound,
    claim_outbound,
    queue_outbound,
    start_provider_call,
)
from tasks.attention import ATTENTION_LISTS
from tasks.context import TaskContext
from tasks.optouts import is_opted_out
from tasks.providers import send_twilio_sms
from tasks.reconcile import reconcile_message, reconcile_unknown
from tasks.sending import deliver_outbound, enqueue_send, sweep_outbound
from tasks.sweeps import sweep_inbox
from tests.helpers import wait_for
from tests.support.messaging import messages_settled, outbound_rows, random_phone, sent_to
from tests.support.services import MakeOrg

pytestmark = pytest.mark.integration

SENDER = "+15005550006"


def queue_message(context: TaskContext, org_id: uuid.UUID, to: str, purpose: str) -> uuid.UUID:
    """One SMS row, not enqueued: the test decides what happens to it. It answers a message
    of the lead's from just now, so quiet hours never hold it (test_quiet_hours.py)."""
    with context.db.tenant(org_id) as session:
        cipher = context.keys.cipher(session, org_id)
        message = NewOutbound(
            channel="sms",
            purpose=purpose,
            idempotency_key=f"test:{uuid.uuid4().hex}",
            recipient=to,
            recipient_bidx=phone_index(cipher, to),
            body=f"{purpose} {uuid.uuid4().hex[:8]}",
            sender=SENDER,
            reply_to_at=context.clock(),
        )
        [row] = queue_outbound(session, cipher, [message], context.clock())
    return row.id


def claim(context: TaskContext, org_id: uuid.UUID, message_id: uuid.UUID) -> Any:
    with context.db.tenant(org_id) as session:
        claimed = claim_outbound(
            session, context.keys.cipher(session, org_id), message_id, context.clock(), is_opted_out
        )
    assert claimed.outcome == "claimed" and claimed.message is not None
    return claimed.message


def mark_called(context: TaskContext, message: Any) -> bool:
    with context.db.tenant(message.org_id) as session:
        return (
            start_provider_call(session, message.id, message.attempt, context.clock(), is_opted_out)
            == "call"
        )


def called(context: TaskContext, org_id: uuid.UUID, message_id: uuid.UUID) -> Any:
    """Claim the row and start its provider call, as a worker does just before the request."""
    message = claim(context, org_id, message_id)
    assert mark_called(context, message)
    return message


def settle(context: TaskContext, org_id: uuid.UUID, message_id: uuid.UUID) -> None:
    """Reconcile this row as if the grace period were over (other tests' rows untouched)."""
    reconcile_message(context, org_id, message_id, grace=timedelta(0))


def row_of(context: TaskContext, org_id: uuid.UUID, message_id: uuid.UUID) -> Any:
    [row] = [r for r in outbound_rows(context, org_id) if r.id == message_id]
    return row


def listed_for_operators(context: TaskContext, message_id: uuid.UUID) -> bool:
    with context.db.maintenance() as session:
        return any(
            item["id"] == str(message_id) for item in ATTENTION_LISTS["unknown_sms"](session)
        )


def test_worker_killed_before_the_provider_call_is_retried_and_sent_once(
    worker: dramatiq.Worker, make_org: MakeOrg, context: TaskContext, sandbox_state: SandboxState
) -> None:
    org, person = make_org(), random_phone()
    message_id = queue_message(context, org.id, person, "lead_autoreply")
    dead = claim(context, org.id, message_id)  # claimed, then the worker died: no provider call

    assert sweep_outbound(context, queued_older_than=0, sending_older_than=3600) >= 1
    wait_for(lambda: messages_settled(context, org.id, 1))

    row = row_of(context, org.id, message_id)
    assert (row.state, row.attempts) == ("sent", 2)
    assert row.provider_call_at is not None
    assert len(sent_to(sandbox_state, person)) == 1
    # The dead worker's late step cannot start a second call: its attempt was taken back.
    assert mark_called(context, dead) is False


def test_a_call_that_started_is_unknown_then_reconciled_to_sent_from_the_provider_list(
    make_org: MakeOrg, context: TaskContext, sandbox_state: SandboxState
) -> None:
    org, person = make_org(), random_phone()
    message_id = queue_message(context, org.id, person, "lead_autoreply")
    message = called(context, org.id, message_id)
    # The provider got it, then the worker died before recording the answer.
    result = send_twilio_sms(context.settings, message.recipient, message.body, message.sender)
    assert deliver_outbound(context, org.id, message_id) == "unknown"

    swept = sweep_inbox(context, context.clock())  # the scheduler's job, every minute
    assert swept["failed_sweeps"] == 0

    row = row_of(context, org.id, message_id)
    assert (row.state, row.provider_sid, row.last_error_code) == (
        "sent",
        result.provider_sid,
        "reconciled",
    )
    enqueue_send("sms", org.id, message_id)
    assert deliver_outbound(context, org.id, message_id) == "skipped"
    assert sandbox_state.stats()["requests"] == 1
    assert not listed_for_operators(context, message_id)


def test_answer_dropped_after_the_request_is_reconciled_and_never_resent(
    worker: dramatiq.Worker, make_org: MakeOrg, context: TaskContext, sandbox_state: SandboxState
) -> None:
    org, person = make_org(), random_phone()
    sandbox_state.push_behaviour([{"drop": "after"}], channel="sms", match_to=person)
    message_id = queue_message(context, org.id, person, "campaign")
    enqueue_send("sms", org.id, message_id)
    wait_for(lambda: messages_settled(context, org.id, 1))
    assert row_of(context, org.id, message_id).state == "unknown"

    settle(context, org.id, message_id)

    row = row_of(context, org.id, message_id)
    [record] = sent_to(sandbox_state, person)
    assert (row.state, row.provider_sid) == ("sent", record["sid"])
    assert sandbox_state.stats()["requests"] == 1


def test_a_lead_message_the_provider_does_not_have_stays_unknown_for_operators(
    make_org: MakeOrg, context: TaskContext, sandbox_state: SandboxState
) -> None:
    org, person = make_org(), random_phone()
    message_id = queue_message(context, org.id, person, "lead_autoreply")
    called(context, org.id, message_id)
    assert deliver_outbound(context, org.id, message_id) == "unknown"

    reconcile_unknown(context, grace_seconds=3600)  # within the grace period: undecided
    assert row_of(context, org.id, message_id).last_error_code == "interrupted"
    assert not listed_for_operators(context, message_id)

    settle(context, org.id, message_id)
    row = row_of(context, org.id, message_id)
    assert (row.state, row.last_error_code) == ("unknown", "not_at_provider")
    assert listed_for_operators(context, message_id)
    with context.db.maintenance() as session:
        [entry] = [e for e in ATTENTION_LISTS["unknown_sms"](session) if e["id"] == str(message_id)]
    assert (entry["purpose"], entry["error"]) == ("lead_autoreply", "not_at_provider")
    assert person[-4:] not in str(entry)
    assert sandbox_state.stats()["requests"] == 0


def test_an_alert_the_provider_does_not_have_is_sent_again(
    worker: dramatiq.Worker, make_org: MakeOrg, context: TaskContext, sandbox_state: SandboxState
) -> None:
    org, owner = make_org(), random_phone()
    message_id = queue_message(context, org.id, owner, "owner_alert")
    called(context, org.id, message_id)
    assert deliver_outbound(context, org.id, message_id) == "unknown"

    settle(context, org.id, message_id)
    wait_for(lambda: row_of(context, org.id, message_id).state == "sent")

    assert len(sent_to(sandbox_state, owner)) == 1
    assert row_of(context, org.id, message_id).attempts == 2


def test_two_provider_messages_that_both_match_are_left_to_operators(
    make_org: MakeOrg, context: TaskContext, sandbox_state: SandboxState
) -> None:
    org, person = make_org(), random_phone()
    message_id = queue_message(context, org.id, person, "lead_autoreply")
    message = called(context, org.id, message_id)
    for _ in range(2):
        send_twilio_sms(context.settings, message.recipient, message.body, message.sender)
    assert deliver_outbound(context, org.id, message_id) == "unknown"

    settle(context, org.id, message_id)

    row = row_of(context, org.id, message_id)
    assert (row.state, row.last_error_code) == ("unknown", "ambiguous")
    assert listed_for_operators(context, message_id)


def test_a_stop_recorded_between_claim_and_call_still_blocks_the_message(
    make_org: MakeOrg, context: TaskContext, sandbox_state: SandboxState
) -> None:
    from tests.support.messaging import suppress_numbers

    org, person = make_org(), random_phone()
    message_id = queue_message(context, org.id, person, "lead_autoreply")
    message = claim(context, org.id, message_id)
    suppress_numbers(context, org.id, [person])

    assert mark_called(context, message) is False

    row = row_of(context, org.id, message_id)
    assert (row.state, row.last_error_code, row.provider_call_at) == ("blocked", "suppressed", None)
    assert sandbox_state.stats()["requests"] == 0
