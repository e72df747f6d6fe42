"""Campaigns: only leads whose consent is newer than any STOP, paced per sender, launched once."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any

import dramatiq
import pytest
from sqlalchemy import func, select
from starlette.testclient import TestClient

from leadline.sandbox import SandboxState, SentMessage
from models.messaging import Campaign
from tests.helpers import wait_for
from tests.support.messaging import (
    add_business_number,
    assert_no_duplicates,
    clock_at,
    distinct_phones,
    inbound_sms,
    make_leads,
    messages_settled,
    outbound_rows,
    suppress_numbers,
    tuned_settings,
)
from tests.support.services import MakeOrg, Org

if TYPE_CHECKING:
    from tasks.context import TaskContext

pytestmark = pytest.mark.integration

FUTURE = "2999-01-01T00:00:00+00:00"


def launch(client: TestClient, org: Org, key: str | None, **body: Any) -> Any:
    payload = {"name": "Spring check-up", "template": "Hi {name}, time for a roof check?"}
    payload.update(body)
    headers = dict(org.auth)
    if key is not None:
        headers["Idempotency-Key"] = key
    return client.post("/v1/campaigns", json=payload, headers=headers)


def counts(client: TestClient, org: Org, campaign_id: str) -> dict[str, Any]:
    response = client.get(f"/v1/campaigns/{campaign_id}", headers=org.auth)
    assert response.status_code == 200
    return dict(response.json()["counts"])


def send_span(records: list[SentMessage]) -> float:
    times = sorted(datetime.fromisoformat(r["time"]) for r in records)
    return (times[-1] - times[0]).total_seconds()


def test_campaign_to_500_leads_with_50_suppressed_sends_exactly_450_at_the_rate(
    client: TestClient,
    worker: dramatiq.Worker,
    make_org: MakeOrg,
    context: TaskContext,
    sandbox_state: SandboxState,
) -> None:
    org = make_org()
    sender = add_business_number(context, org.id)
    phones = distinct_phones(510)
    consenting, suppressed, no_consent = phones[:500], phones[:50], phones[500:]
    make_leads(context, org.id, consenting)
    make_leads(context, org.id, no_consent, consent=False)
    suppress_numbers(context, org.id, suppressed)
    # Half of them consent again after their STOP: targeted, and blocked until they text START.
    make_leads(context, org.id, suppressed[:25])
    rate = 150.0

    with (
        clock_at(context) as clocked,
        tuned_settings(clocked, leadline_campaign_rate_per_sender=rate),
    ):
        response = launch(client, org, "spring-2026")
        assert response.status_code == 202
        campaign_id = response.json()["id"]
        wait_for(lambda: messages_settled(context, org.id, 475), timeout=60)

    records = sandbox_state.sent()
    assert len(records) == 450
    assert {r["to"] for r in records} == set(consenting[50:])
    assert {r["from"] for r in records} == {sender}
    assert all(r["body"].startswith("Hi Lead ") and "STOP" in r["body"] for r in records)
    assert send_span(records) >= 449 / rate * 0.9
    assert_no_duplicates(sandbox_state)
    assert counts(client, org, campaign_id) == {
        "targeted": 475,
        "queued": 0,
        "held": 0,
        "sent": 450,
        "delivered": 0,
        "blocked": 25,
        "failed": 0,
        "unknown": 0,
    }

    again = launch(client, org, "spring-2026")
    assert again.status_code == 202 and again.json()["id"] == campaign_id
    assert len(outbound_rows(context, org.id)) == 475
    assert client.get(f"/v1/campaigns/{campaign_id}", headers=org.auth).json()["status"] == "done"


def test_sends_are_throttled_per_sender_number(
    client: TestClient,
    worker: dramatiq.Worker,
    make_org: MakeOrg,
    context: TaskContext,
    sandbox_state: SandboxState,
) -> None:
    org = make_org()
    add_business_number(context, org.id)
    make_leads(context, org.id, distinct_phones(5))
    rate = 4.0

    with (
        clock_at(context) as clocked,
        tuned_settings(clocked, leadline_campaign_rate_per_sender=rate),
    ):
        first = launch(client, org, "slow-1")
        second = launch(client, org, "slow-2", name="Same sender, same pace")
        assert first.status_code == second.status_code == 202
        wait_for(lambda: messages_settled(context, org.id, 10), timeout=20)

    records = sandbox_state.sent()
    assert len(records) == 10
    # Two campaigns on one number share its pace: 10 messages take at least 9 intervals.
    assert send_span(records) >= 9 / rate * 0.9


def test_a_lead_who_said_stop_after_consenting_is_not_targeted(
    client: TestClient,
    worker: dramatiq.Worker,
    make_org: MakeOrg,
    context: TaskContext,
    sandbox_state: SandboxState,
) -> None:
    org = make_org()
    add_business_number(context, org.id)
    phones = distinct_phones(3)
    make_leads(context, org.id, phones)
    inbound_sms(context, org.id, phones[2], "STOP")
    wait_for(lambda: processed_events(context, org.id) == 1)

    with (
        clock_at(context) as clocked,
        tuned_settings(clocked, leadline_campaign_rate_per_sender=50.0),
    ):
        campaign_id = launch(client, org, "k").json()["id"]
        wait_for(lambda: messages_settled(context, org.id, 2))

    assert {r["to"] for r in sandbox_state.sent()} == set(phones[:2])
    assert counts(client, org, campaign_id)["targeted"] == 2


def processed_events(context: TaskContext, org_id: uuid.UUID) -> int:
    from sqlalchemy import func, select

    from models.tables import InboundEvent

    with context.db.tenant(org_id) as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(InboundEvent)
                .where(InboundEvent.status == "processed")
            )
            or 0
        )


def test_fourth_launch_in_a_minute_is_429_and_replays_are_free(
    client: TestClient, make_org: MakeOrg, context: TaskContext
) -> None:
    org = make_org()
    nothing = {"filter": {"consent": "sms", "created_after": FUTURE}}
    for key in ("a", "b", "c"):
        assert launch(client, org, key, **nothing).status_code == 202
    replay = launch(client, org, "a", **nothing)
    assert replay.status_code == 202 and replay.json()["replayed"] is True

    refused = launch(client, org, "d", **nothing)

    assert refused.status_code == 429
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    other_org = make_org()
    assert launch(client, other_org, "d", **nothing).status_code == 202


def test_launch_requires_idempotency_key_and_valid_body(
    client: TestClient, make_org: MakeOrg
) -> None:
    org = make_org()
    assert launch(client, org, None).status_code == 400
    assert launch(client, org, "x", template="Hi {name.__class__}").status_code == 422
    assert launch(client, org, "y", filter={"consent": "email"}).status_code == 422
    assert launch(client, org, "z", extra="field").status_code == 422
    missing_auth = client.post("/v1/campaigns", json={}, headers={"Idempotency-Key": "k"})
    assert missing_auth.status_code == 401


def test_same_key_with_a_different_campaign_is_422(
    client: TestClient, make_org: MakeOrg, context: TaskContext
) -> None:
    org = make_org()
    nothing = {"filter": {"consent": "sms", "created_after": FUTURE}}
    first = launch(client, org, "dup", **nothing)
    again = launch(client, org, "dup", **nothing)
    other = launch(client, org, "dup", name="Another", **nothing)
    assert first.status_code == again.status_code == 202
    assert again.json() == {"id": first.json()["id"], "replayed": True}
    assert other.status_code == 422
    assert other.json()["error"] == "idempotency_key_reused"
    with context.db.tenant(org.id) as session:
        assert session.scalar(select(func.count()).select_from(Campaign)) == 1


def test_campaigns_of_another_org_are_not_found(client: TestClient, make_org: MakeOrg) -> None:
    owner, stranger = make_org(), make_org()
    nothing = {"filter": {"consent": "sms", "created_after": FUTURE}}
    campaign_id = launch(client, owner, "mine", **nothing).json()["id"]
    assert client.get(f"/v1/campaigns/{campaign_id}", headers=stranger.auth).status_code == 404
    assert client.get("/v1/campaigns/not-a-uuid", headers=owner.auth).status_code == 404
