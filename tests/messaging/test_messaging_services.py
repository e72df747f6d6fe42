"""Twilio Messaging Services (10DLC): TWILIO_MESSAGING_SERVICE_SID or a number's own service
is sent as MessagingServiceSid instead of From (the sandbox shows it on GET /sent), and
carrier filtering (30007) and unregistered-number (30034) errors reach the operators'
attention list with counts per org and number. Also the quiet-hours CLI setting."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

import dramatiq
import pytest

from leadline.sandbox import SandboxState
from tasks.attention import read_attention_source
from tasks.context import TaskContext
from tasks.sweeps import sweep_inbox
from tests.helpers import wait_for
from tests.support.messaging import (
    clock_at,
    make_leads,
    outbound_rows,
    queue_alerts,
    random_phone,
    sent_to,
    status_callback,
    tuned_settings,
)

pytestmark = pytest.mark.integration

GLOBAL_SERVICE = "MG" + "a" * 32
NUMBER_SERVICE = "MG" + "b" * 32


def last_json(result: Any) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_the_global_messaging_service_replaces_from(
    worker: dramatiq.Worker, make_org: Any, context: TaskContext, sandbox_state: SandboxState
) -> None:
    org = make_org()
    owner = random_phone()
    with tuned_settings(context, twilio_messaging_service_sid=GLOBAL_SERVICE):
        queue_alerts(context, org.id, owner, count=1)
        [record] = wait_for(lambda: sent_to(sandbox_state, owner))
        wait_for(lambda: outbound_rows(context, org.id)[0].state == "sent")
    assert record["messaging_service_sid"] == GLOBAL_SERVICE
    assert record["from"] is None
    assert outbound_rows(context, org.id)[0].provider_sid == record["sid"]


def test_without_a_service_the_message_goes_from_the_number(
    worker: dramatiq.Worker, make_org: Any, context: TaskContext, sandbox_state: SandboxState
) -> None:
    org = make_org()
    owner = random_phone()
    queue_alerts(context, org.id, owner, count=1)
    [record] = wait_for(lambda: sent_to(sandbox_state, owner))
    assert record["from"] == "+15005550006" and record["messaging_service_sid"] is None


def test_a_numbers_own_service_wins_and_is_managed_by_the_cli(
    client: Any,
    worker: dramatiq.Worker,
    make_org: Any,
    context: TaskContext,
    sandbox_state: SandboxState,
    leadline_in_process: Callable[..., Any],
) -> None:
    org = make_org()
    number = f"+1212555{uuid.uuid4().int % 10_000:04d}"
    added = last_json(
        leadline_in_process(
            "number", "add", str(org.id), number, "--messaging-service", NUMBER_SERVICE, "--json"
        )
    )
    assert added["messaging_service_sid"] == NUMBER_SERVICE
    listed = last_json(leadline_in_process("number", "list", str(org.id), "--json"))
    assert listed == [{"number": number, "messaging_service_sid": NUMBER_SERVICE}]
    bad = leadline_in_process("number", "set-service", str(org.id), number, "MGnot-a-sid")
    assert bad.exit_code == 1 and bad.output.count("\n") == 1 and "Messaging Service" in bad.output

    lead = random_phone()
    make_leads(context, org.id, [lead])
    headers = {**org.auth, "Idempotency-Key": "svc"}
    body = {"name": "Through the service", "template": "Hi {name}"}
    with (
        clock_at(context) as clocked,
        tuned_settings(clocked, twilio_messaging_service_sid=GLOBAL_SERVICE),
    ):
        assert client.post("/v1/campaigns", json=body, headers=headers).status_code == 202
        [record] = wait_for(lambda: sent_to(sandbox_state, lead), timeout=30)
    assert record["messaging_service_sid"] == NUMBER_SERVICE and record["from"] is None

    cleared = last_json(
        leadline_in_process("number", "set-service", str(org.id), number, "none", "--json")
    )
    assert cleared["messaging_service_sid"] is None
    assert (
        last_json(leadline_in_process("number", "list", str(org.id), "--json"))[0][
            "messaging_service_sid"
        ]
        is None
    )


def test_an_unknown_message_sent_through_a_service_is_reconciled_by_the_service(
    worker: dramatiq.Worker, make_org: Any, context: TaskContext, sandbox_state: SandboxState
) -> None:
    org = make_org()
    owner = random_phone()
    sandbox_state.push_behaviour([{"drop": "after"}], channel="sms", match_to=owner)
    with tuned_settings(context, twilio_messaging_service_sid=GLOBAL_SERVICE) as tuned:
        [message_id] = queue_alerts(tuned, org.id, owner, count=1)
        wait_for(lambda: outbound_rows(context, org.id, id=message_id)[0].state == "unknown")
        sweep_inbox(tuned, tuned.clock())
        [row] = outbound_rows(context, org.id, id=message_id)
    [record] = sent_to(sandbox_state, owner)
    assert row.state == "sent" and row.last_error_code == "reconciled"
    assert row.provider_sid == record["sid"]


def carrier_rows(context: TaskContext, org_id: uuid.UUID) -> list[dict[str, Any]]:
    listing = read_attention_source(context.db, "carrier_rejections")
    assert listing.error is None
    return [row for row in listing.rows if row["org_id"] == str(org_id)]


def test_carrier_filtering_and_unregistered_numbers_are_counted_for_operators(
    worker: dramatiq.Worker, make_org: Any, context: TaskContext, sandbox_state: SandboxState
) -> None:
    org = make_org()
    filtered, unregistered = random_phone(), random_phone()
    sandbox_state.push_behaviour([{"twilio_error": 30007}] * 2, channel="sms", match_to=filtered)
    queue_alerts(context, org.id, filtered, count=2)
    wait_for(lambda: [r.state for r in outbound_rows(context, org.id)] == ["failed", "failed"])
    assert sent_to(sandbox_state, filtered) == []

    # 30034 arrives later, in the status callback of a message Twilio had accepted.
    [accepted] = queue_alerts(context, org.id, unregistered, count=1)
    [record] = wait_for(lambda: sent_to(sandbox_state, unregistered))
    status_callback(context, org.id, record["sid"], "undelivered", error="30034")
    wait_for(lambda: outbound_rows(context, org.id, id=accepted)[0].state == "undelivered")

    rows = carrier_rows(context, org.id)
    by_code = {row["error"]: row for row in rows}
    assert set(by_code) == {"30007", "30034"}
    assert by_code["30007"]["messages"] == 2 and by_code["30034"]["messages"] == 1
    assert by_code["30007"]["meaning"] == "carrier filtering"
    assert by_code["30034"]["meaning"] == "unregistered number"
    assert {row["number"] for row in rows} == {"+15005550006"}  # the sending number
    assert filtered not in json.dumps(rows) and unregistered not in json.dumps(rows)


def test_org_quiet_hours_are_set_shown_and_refused_when_wider(
    make_org: Any, context: TaskContext, leadline_in_process: Callable[..., Any]
) -> None:
    org = str(make_org().id)
    shown = last_json(leadline_in_process("org", "settings", org, "--json"))
    assert shown["quiet_hours"] == "08:00-21:00"
    changed = last_json(
        leadline_in_process("org", "settings", org, "--quiet-hours", "09:00-20:00", "--json")
    )
    assert changed["quiet_hours"] == "09:00-20:00"
    for wider in ("07:00-20:00", "09:00-22:00", "21:00-08:00", "soon"):
        refused = leadline_in_process("org", "settings", org, "--quiet-hours", wider)
        assert refused.exit_code == 1, wider
        assert refused.output.startswith("error: ") and refused.output.count("\n") == 1
        assert "Traceback" not in refused.output
    assert (
        last_json(leadline_in_process("org", "settings", org, "--json"))["quiet_hours"]
        == "09:00-20:00"
    )
    reset = last_json(
        leadline_in_process("org", "settings", org, "--quiet-hours", "default", "--json")
    )
    assert reset["quiet_hours"] == "08:00-21:00"
