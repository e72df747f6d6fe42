"""Quiet hours with an injected clock: a campaign started at 07:30 New York time reaches each
recipient only inside their own 08:00-21:00, holds the rest (`held`, `not_before`), releases
them when their window opens, and never texts a number that said STOP while held. Alerts to
the business and replies within 24 h of the lead's message are not held."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import dramatiq
import phonenumbers
import pytest

from leadline.sandbox import SandboxState
from models.quiet_hours import parse_window, set_org_window
from tasks.context import TaskContext
from tasks.jobs import get_job, run_job
from tests.helpers import wait_for
from tests.support.messaging import (
    add_alert_number,
    add_business_number,
    clock_at,
    inbound_sms,
    make_leads,
    outbound_rows,
    queue_alerts,
    random_phone,
    sent_to,
    tuned_settings,
)
from tests.support.services import Org

pytestmark = pytest.mark.integration

NEW_YORK = ("+12125550100", "+12125550101")
LOS_ANGELES = ("+12135550102", "+13105550103")
HONOLULU = ("+18085550104", "+18085550105")
ZONES = {
    **dict.fromkeys(NEW_YORK, "America/New_York"),
    **dict.fromkeys(LOS_ANGELES, "America/Los_Angeles"),
    **dict.fromkeys(HONOLULU, "Pacific/Honolulu"),
}
EASTERN = ZoneInfo("America/New_York")
# Monday 7 December 2026, 07:30 in New York (EST): 04:30 in Los Angeles, 02:30 in Honolulu.
START = datetime(2026, 12, 7, 7, 30, tzinfo=EASTERN)


def new_york(hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 12, 7, hour, minute, tzinfo=EASTERN).astimezone(UTC)


def launch(client: Any, org: Org, key: str) -> str:
    body = {"name": "Winter check-up", "template": "Hi {name}, time for a furnace check?"}
    headers = {**org.auth, "Idempotency-Key": key}
    response = client.post("/v1/campaigns", json=body, headers=headers)
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def counts(client: Any, org: Org, campaign_id: str) -> dict[str, Any]:
    response = client.get(f"/v1/campaigns/{campaign_id}", headers=org.auth)
    assert response.status_code == 200
    return dict(response.json())


def by_phone(context: TaskContext, org_id: uuid.UUID) -> dict[str, Any]:
    """Each campaign row by its recipient (decrypted in the test only)."""
    rows = outbound_rows(context, org_id, purpose="campaign")
    with context.db.tenant(org_id) as session:
        cipher = context.keys.cipher(session, org_id)
        return {
            cipher.decrypt(r.recipient_ct, "outbound_messages", "recipient_ct", r.id).decode(): r
            for r in rows
        }


def states_are(context: TaskContext, org_id: uuid.UUID, expected: dict[str, str]) -> bool:
    rows = by_phone(context, org_id)
    return {phone: rows[phone].state for phone in expected if phone in rows} == expected


def release(context: TaskContext, at: datetime) -> None:
    """The scheduler's inbox sweep for the minute of `at` (it releases due held messages)."""
    context.clock.set(at)
    run_job(context, get_job("sweep_inbox"), at.replace(second=0, microsecond=0))


def ours(sandbox_state: SandboxState) -> list[dict[str, Any]]:
    """What the sandbox got for this test's numbers (it is shared by the whole session)."""
    return [record for record in sandbox_state.sent() if record["to"] in ZONES]


def in_local_window(moment: datetime, zone: str) -> bool:
    local = moment.astimezone(ZoneInfo(zone)).time()
    return time(8) <= local < time(21)


def test_a_campaign_started_at_0730_new_york_waits_for_each_recipients_morning(
    client: Any,
    worker: dramatiq.Worker,
    make_org: Any,
    context: TaskContext,
    sandbox_state: SandboxState,
) -> None:
    for phone in ZONES:
        assert phonenumbers.is_valid_number(phonenumbers.parse(phone))
    org = make_org()
    add_business_number(context, org.id)
    make_leads(context, org.id, list(ZONES))
    everyone = dict.fromkeys(ZONES, "held")

    with (
        clock_at(context, START.astimezone(UTC)) as clocked,
        tuned_settings(clocked, leadline_campaign_rate_per_sender=50.0) as tuned,
    ):
        campaign_id = launch(client, org, "winter-2026")
        wait_for(lambda: states_are(context, org.id, everyone))
        assert ours(sandbox_state) == []
        view = counts(client, org, campaign_id)
        assert view["counts"]["held"] == 6 and view["counts"]["sent"] == 0
        assert view["status"] == "running"
        rows = by_phone(context, org.id)
        for phone in ZONES:
            assert rows[phone].not_before is not None
        assert {rows[p].not_before for p in NEW_YORK} == {new_york(8)}
        assert {rows[p].not_before for p in LOS_ANGELES} == {new_york(11)}
        assert {rows[p].not_before for p in HONOLULU} == {new_york(13)}

        # A Honolulu lead says STOP while its message is held.
        inbound_sms(context, org.id, HONOLULU[0], "STOP")
        release(tuned, new_york(7, 59))
        assert states_are(context, org.id, everyone) and ours(sandbox_state) == []

        release(tuned, new_york(8))
        wait_for(lambda: states_are(context, org.id, dict.fromkeys(NEW_YORK, "sent")))
        assert states_are(context, org.id, dict.fromkeys(LOS_ANGELES + HONOLULU, "held"))
        # Released together, sent at the campaign's pace (50/s) from 08:00, not in one burst.
        slots = sorted(by_phone(context, org.id)[p].next_attempt_at for p in NEW_YORK)
        assert slots[0] >= new_york(8) and (slots[1] - slots[0]).total_seconds() >= 0.9 / 50

        release(tuned, new_york(10, 59))
        assert states_are(context, org.id, dict.fromkeys(LOS_ANGELES + HONOLULU, "held"))
        release(tuned, new_york(11))
        wait_for(lambda: all(sent_to(sandbox_state, p) for p in LOS_ANGELES))
        assert states_are(context, org.id, dict.fromkeys(HONOLULU, "held"))

        wait_for(lambda: opted_out(context, org.id, HONOLULU[0]))
        release(tuned, new_york(13, 1))
        wait_for(lambda: states_are(context, org.id, {HONOLULU[0]: "blocked", HONOLULU[1]: "sent"}))
        view = counts(client, org, campaign_id)

    assert sorted(r["to"] for r in ours(sandbox_state)) == sorted(set(ZONES) - {HONOLULU[0]})
    assert sent_to(sandbox_state, HONOLULU[0]) == []
    rows = by_phone(context, org.id)
    for phone, zone in ZONES.items():
        if phone != HONOLULU[0]:
            assert rows[phone].sent_at is not None and in_local_window(rows[phone].sent_at, zone)
    assert view["counts"] == {
        "targeted": 6,
        "queued": 0,
        "held": 0,
        "sent": 5,
        "delivered": 0,
        "blocked": 1,
        "failed": 0,
        "unknown": 0,
    }
    assert view["status"] == "done"


def test_an_org_window_narrower_than_the_default_holds_until_it_opens(
    client: Any,
    worker: dramatiq.Worker,
    make_org: Any,
    context: TaskContext,
    sandbox_state: SandboxState,
) -> None:
    org = make_org()
    add_business_number(context, org.id)
    make_leads(context, org.id, [NEW_YORK[0]])
    with context.db.tenant(org.id) as session:
        set_org_window(session, org.id, parse_window("09:00-20:00"))

    with (
        clock_at(context, new_york(8, 30)) as clocked,
        tuned_settings(clocked, leadline_campaign_rate_per_sender=50.0) as tuned,
    ):
        launch(client, org, "narrow")
        wait_for(lambda: states_are(context, org.id, {NEW_YORK[0]: "held"}))
        assert by_phone(context, org.id)[NEW_YORK[0]].not_before == new_york(9)
        release(tuned, new_york(9))
        wait_for(lambda: sent_to(sandbox_state, NEW_YORK[0]))


def test_alerts_to_the_business_are_sent_at_night(
    worker: dramatiq.Worker, make_org: Any, context: TaskContext, sandbox_state: SandboxState
) -> None:
    org = make_org()
    owner = f"+1212555{uuid.uuid4().int % 10_000:04d}"
    add_alert_number(context, org.id, owner)
    with clock_at(context, new_york(3)) as clocked:
        queue_alerts(clocked, org.id, owner, count=1)
        wait_for(lambda: sent_to(sandbox_state, owner))


def test_a_reply_within_24_hours_of_the_leads_text_goes_at_night_and_a_later_one_waits(
    client: Any,
    worker: dramatiq.Worker,
    make_org: Any,
    context: TaskContext,
    sandbox_state: SandboxState,
) -> None:
    org = make_org()
    add_business_number(context, org.id)
    lead = random_phone()  # Los Angeles (+1 415)
    lead_id = make_leads(context, org.id, [lead])[0]
    inbound_sms(context, org.id, lead, "Do you clean gutters?")
    wait_for(lambda: messages_from_lead(context, org.id, lead_id))
    texted_at = messages_from_lead(context, org.id, lead_id)[0]
    night = first_local(texted_at, "America/Los_Angeles", 23)

    with clock_at(context, night) as clocked:
        assert reply(client, org, lead_id, "Yes, tomorrow?", "r1").status_code == 202
        wait_for(lambda: sent_to(sandbox_state, lead))
        late = first_local(texted_at + timedelta(hours=24, minutes=1), "America/Los_Angeles", 2)
        clocked.clock.set(late)
        assert reply(client, org, lead_id, "Still interested?", "r2").status_code == 202
        wait_for(lambda: [r for r in outbound_rows(context, org.id) if r.state == "held"])

    held = [r for r in outbound_rows(context, org.id) if r.state == "held"]
    assert len(held) == 1 and held[0].purpose == "reply"
    assert held[0].not_before is not None and held[0].not_before > late
    assert in_local_window(held[0].not_before, "America/Los_Angeles")
    assert [r["body"] for r in sent_to(sandbox_state, lead)] == ["Yes, tomorrow?"]
    drop_held(context, org.id)  # leave nothing for other tests' sweeps to release


def drop_held(context: TaskContext, org_id: uuid.UUID) -> None:
    from sqlalchemy import delete

    from models.messaging import OutboundMessage

    with context.db.tenant(org_id) as session:
        session.execute(delete(OutboundMessage).where(OutboundMessage.state == "held"))


def first_local(after: datetime, zone: str, hour: int) -> datetime:
    """The first `hour`:00 local time in `zone` at or after `after`."""
    local = after.astimezone(ZoneInfo(zone))
    candidate = local.replace(hour=hour, minute=0, second=0, microsecond=0)
    if candidate < local:
        candidate += timedelta(days=1)
    return candidate.astimezone(UTC)


def opted_out(context: TaskContext, org_id: uuid.UUID, phone: str) -> bool:
    from models.leads import phone_index
    from tasks.optouts import is_opted_out

    with context.db.tenant(org_id) as session:
        cipher = context.keys.cipher(session, org_id)
        return is_opted_out(session, org_id, phone_index(cipher, phone))


def messages_from_lead(
    context: TaskContext, org_id: uuid.UUID, lead_id: uuid.UUID
) -> list[datetime]:
    from sqlalchemy import select

    from models.messaging import ConversationMessage

    with context.db.tenant(org_id) as session:
        query = select(ConversationMessage.created_at).where(ConversationMessage.lead_id == lead_id)
        return list(session.scalars(query))


def reply(client: Any, org: Org, lead_id: uuid.UUID, body: str, key: str) -> Any:
    headers = {**org.auth, "Idempotency-Key": key}
    return client.post(f"/v1/leads/{lead_id}/messages", json={"body": body}, headers=headers)


def test_a_number_without_a_known_time_zone_is_never_texted_a_campaign(
    make_org: Any, context: TaskContext, sandbox_state: SandboxState
) -> None:
    from models.leads import phone_index
    from models.outbound_messages import NewOutbound, queue_outbound
    from tasks.sending import deliver_outbound

    org = make_org()
    nowhere = "+80012345678"  # international freephone: valid, in no time zone
    with clock_at(context) as clocked:
        with context.db.tenant(org.id) as session:
            cipher = context.keys.cipher(session, org.id)
            message = NewOutbound(
                channel="sms",
                purpose="campaign",
                idempotency_key=f"test:{uuid.uuid4().hex}",
                recipient=nowhere,
                recipient_bidx=phone_index(cipher, nowhere),
                body="Hi there. Reply STOP to opt out.",
                sender="+15005550006",
            )
            [row] = queue_outbound(session, cipher, [message], clocked.clock())
        assert deliver_outbound(clocked, org.id, row.id) == "failed"
    [stored] = outbound_rows(context, org.id)
    assert (stored.state, stored.last_error_code) == ("failed", "no_quiet_window")
    assert sent_to(sandbox_state, nowhere) == []
