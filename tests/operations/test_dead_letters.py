"""Messages Dramatiq gives up on are recorded, listed, replayed once, purged; all audited."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import dramatiq
import pytest
from dramatiq.common import current_millis

from tests.helpers import wait_for
from tests.support.brokers import dead_copies
from tests.support.operations import (
    FAKE_ROWS,
    PERSON_EMAIL,
    PERSON_NAME,
    PERSON_PHONE,
    FlakyActor,
    dead_letter_row,
    declare_flaky_actor,
    run_cli_batch,
)

if TYPE_CHECKING:
    from tasks.context import TaskContext

pytestmark = [pytest.mark.integration, pytest.mark.both_brokers]


@pytest.fixture(scope="module")
def flaky(broker: dramatiq.Broker) -> FlakyActor:
    # One name per broker: both runs share the database, and `dlq list --actor` reads it.
    return declare_flaky_actor(broker, f"test_dlq_always_fails_{broker.kind}")  # type: ignore[attr-defined]


@pytest.fixture
def broken(flaky: FlakyActor) -> Iterator[FlakyActor]:
    flaky.broken.set()
    flaky.runs.clear()
    yield flaky
    flaky.broken.set()


def assert_no_pii(text: str) -> None:
    for value in (PERSON_PHONE, PERSON_EMAIL, "Lovelace", "4155550123"):
        assert value not in text


def test_failing_actor_is_dead_lettered_replayed_once_purged_and_audited(
    context: TaskContext, broken: FlakyActor, worker: dramatiq.Worker
) -> None:
    lead_id = "5b0e4f3c-6a53-4a5e-9a60-0f1f4f0c9d11"
    message_id = broken.actor.send(lead_id).message_id

    row = wait_for(lambda: dead_letter_row(context, message_id), timeout=20)
    assert (row.state, row.actor, row.queue) == ("dead", broken.actor.actor_name, broken.queue)
    assert (row.reason, row.retries, row.args) == ("retries_exhausted", 1, [lead_id])
    assert row.error_class == "ProviderOutage" and lead_id in row.error_message
    assert_no_pii(row.error_message + (row.traceback or ""))
    assert "[redacted]" in row.error_message and "+1******0123" in row.error_message

    copies = wait_for(lambda: dead_copies(worker.broker, broken.queue))
    assert [json.loads(copy)["message_id"] for copy in copies] == [message_id]
    assert row.broker_message_id is not None
    assert_no_pii(copies[0].decode())

    broken.broken.clear()  # the cause is fixed; the operator looks, replays twice, purges
    outputs = run_cli_batch(
        context.settings,  # on the broker under test (LEADLINE_BROKER_URL for RabbitMQ)
        ["dlq", "list", "--actor", broken.actor.actor_name, "--json"],
        ["dlq", "show", message_id, "--json"],
        ["dlq", "replay", str(row.id), "--json"],
        ["dlq", "replay", str(row.id), "--json"],
        ["dlq", "purge", str(row.id), "--json"],
        ["audit", "list", "--action", "dlq.*", "--json"],
        ["dlq", "list"],
    )
    assert [o["code"] for o in outputs] == [0] * 7
    listed, shown, replayed, again, purged, audit = (json.loads(o["stdout"]) for o in outputs[:6])

    assert [d["message_id"] for d in listed["dead_letters"]] == [message_id]
    assert listed["dead_letters"][0]["error"].startswith("ProviderOutage: could not alert")
    assert {"name": "test_fake_unknown_sms", "rows": FAKE_ROWS, "error": None} in listed[
        "attention"
    ]
    assert (shown["id"], shown["args"], shown["state"]) == (str(row.id), [lead_id], "dead")
    assert "ProviderOutage" in shown["traceback"] and "[redacted]" in shown["traceback"]
    table = outputs[6]["stdout"]
    assert "test_fake_unknown_sms: 1" in table and "SM-test-0001" in table
    assert_no_pii(json.dumps(outputs))

    assert replayed == {
        "replayed": [{"id": str(row.id), "message_id": message_id}],
        "unchanged": [],
    }
    assert again == {
        "replayed": [],
        "unchanged": [{"id": str(row.id), "message_id": message_id, "state": "replayed"}],
    }
    wait_for(lambda: broken.runs == [message_id])
    worker.join()
    assert broken.runs == [message_id]  # replayed twice, ran once, under its original id
    assert dead_copies(worker.broker, broken.queue) == []

    assert purged["purged"] == [{"id": str(row.id), "message_id": message_id}]
    assert dead_letter_row(context, message_id).state == "purged"
    mine = [e for e in audit if e["target"] == str(row.id)]
    assert [e["action"] for e in reversed(mine)] == ["dlq.recorded", "dlq.replayed", "dlq.purged"]
    assert [e["actor"] for e in reversed(mine)] == [
        "system:worker",
        "operator:cli",
        "operator:cli",
    ]
    assert all(e["details"]["message_id"] == message_id for e in mine)


def test_a_replayed_message_that_fails_again_is_dead_again(
    context: TaskContext, broken: FlakyActor, worker: dramatiq.Worker
) -> None:
    from workers.dlq import replay_dead_letter

    message_id = broken.actor.send("lead-2").message_id
    first = wait_for(lambda: dead_letter_row(context, message_id))
    with context.db.maintenance() as session:
        replay_dead_letter(session, worker.broker, str(first.id), "test", context.clock())
    again = wait_for(
        lambda: (row := dead_letter_row(context, message_id)) and row.failures == 2 and row
    )
    assert again.state == "dead" and again.id == first.id
    assert again.first_failed_at == first.first_failed_at < again.last_failed_at


def test_messages_past_their_age_limit_are_dead_lettered(
    context: TaskContext, broken: FlakyActor, worker: dramatiq.Worker
) -> None:
    broken.broken.clear()
    stale = dramatiq.Message(
        queue_name=broken.queue,
        actor_name=broken.actor.actor_name,
        args=("lead-3",),
        kwargs={},
        options={"max_age": 1000},
        message_timestamp=current_millis() - 60_000,
    )
    worker.broker.enqueue(stale)
    row = wait_for(lambda: dead_letter_row(context, stale.message_id))
    assert (row.reason, row.error_class) == ("age_limit", "SkipMessage")
    assert broken.runs == []


def test_messages_for_unknown_actors_are_dead_lettered(
    context: TaskContext, flaky: FlakyActor, worker: dramatiq.Worker
) -> None:
    orphan = dramatiq.Message(
        queue_name=flaky.queue,
        actor_name="actor_that_does_not_exist",
        args=("lead-4",),
        kwargs={},
        options={},
    )
    worker.broker.enqueue(orphan)
    row = wait_for(lambda: dead_letter_row(context, orphan.message_id))
    assert (row.reason, row.error_class, row.actor) == (
        "unknown_actor",
        "ActorNotFound",
        "actor_that_does_not_exist",
    )


def test_logs_of_a_failing_message_mask_the_person(
    context: TaskContext,
    broken: FlakyActor,
    worker: dramatiq.Worker,
    log_lines: Callable[[], list[dict[str, Any]]],
) -> None:
    message_id = broken.actor.send("lead-5").message_id
    wait_for(lambda: dead_letter_row(context, message_id))
    lines = log_lines()
    text = json.dumps(lines)
    assert_no_pii(text)
    assert PERSON_NAME.split()[0] not in text
    dead = [line for line in lines if line["event"] == "message dead-lettered"]
    assert dead and dead[0]["message_id"] == message_id and dead[0]["level"] == "warning"
    failed = [
        line for line in lines if "exception" in line and line.get("message_id") == message_id
    ]
    assert failed and "ProviderOutage" in failed[0]["exception"]


def test_an_unreachable_database_never_blocks_the_nack(
    broker: dramatiq.Broker, log_lines: Callable[[], list[dict[str, Any]]]
) -> None:
    import socket

    from dramatiq.broker import MessageProxy

    from models.db import Database
    from workers.middleware.dead_letters import DeadLetters

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        down = Database(f"postgresql://postgres@127.0.0.1:{sock.getsockname()[1]}/x")
        message = MessageProxy(dramatiq.Message("q", "some_actor", ("id-1",), {}, {}))
        message.stuff_exception(RuntimeError("boom"))
        DeadLetters(lambda: down).before_nack(broker, message)
        DeadLetters(lambda: None).before_nack(broker, message)
    down.dispose()
    errors = [line for line in log_lines() if line["event"].startswith("dead letter not recorded")]
    assert [line["message_id"] for line in errors] == [message.message_id] * 2
    assert errors[0]["error"] == "OperationalError"
