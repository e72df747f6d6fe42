"""The conversation (inbound and outbound, oldest first, delivery states) and replies by SMS
through the outbox: sent at most once per Idempotency-Key, refused with 409 `opted_out` and
nothing queued when the number is suppressed."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import dramatiq
import pytest
from sqlalchemy import func, select
from starlette.testclient import TestClient

from leadline.sandbox import SandboxState
from models.messaging import OutboundMessage
from tests.api.seeding import add_inbound_message, add_lead
from tests.api.tenants import Tenant
from tests.helpers import wait_for

if TYPE_CHECKING:
    from tasks.context import TaskContext

pytestmark = pytest.mark.integration
PHONE = "+14155550123"


def outbound_count(context: TaskContext, tenant: Tenant) -> int:
    with context.db.tenant(tenant.id) as session:
        return int(session.scalar(select(func.count()).select_from(OutboundMessage)) or 0)


def test_reply_is_sent_once_and_shows_in_the_conversation(
    client: TestClient,
    context: TaskContext,
    make_tenant: Callable[[], Tenant],
    worker: dramatiq.Worker,
    sandbox_state: SandboxState,
) -> None:
    tenant = make_tenant()
    lead_id = add_lead(context, tenant.id, name="Ada", phone=PHONE)
    add_inbound_message(context, tenant.id, lead_id, "Do you do gutters?")
    headers = {**tenant.auth("member"), "Idempotency-Key": "reply-1"}
    first = client.post(
        f"/v1/leads/{lead_id}/messages", json={"body": "Yes we do!"}, headers=headers
    )
    again = client.post(
        f"/v1/leads/{lead_id}/messages", json={"body": "Yes we do!"}, headers=headers
    )
    assert first.status_code == again.status_code == 202
    assert first.json()["id"] == again.json()["id"]
    wait_for(lambda: [m for m in sandbox_state.sent() if m["to"] == PHONE])
    assert [m["body"] for m in sandbox_state.sent() if m["to"] == PHONE] == ["Yes we do!"]

    def conversation() -> list[dict[str, Any]]:
        url = f"/v1/leads/{lead_id}/messages"
        return list(client.get(url, headers=tenant.auth("member")).json()["data"])

    messages = wait_for(lambda: (m := conversation()) and m[-1]["state"] == "sent" and m)
    assert [(m["direction"], m["body"]) for m in messages] == [
        ("inbound", "Do you do gutters?"),
        ("outbound", "Yes we do!"),
    ]


def test_a_suppressed_number_is_409_and_nothing_is_queued(
    client: TestClient, context: TaskContext, make_tenant: Callable[[], Tenant]
) -> None:
    tenant = make_tenant()
    lead_id = add_lead(context, tenant.id, phone=PHONE)
    recorded = client.post(
        "/v1/suppressions", json={"phone": PHONE, "channel": "phone"}, headers=tenant.auth("admin")
    )
    assert recorded.status_code == 201
    before = outbound_count(context, tenant)
    refused = client.post(
        f"/v1/leads/{lead_id}/messages", json={"body": "Hello?"}, headers=tenant.auth("member")
    )
    assert refused.status_code == 409
    assert refused.json() == {
        "error": "opted_out",
        "message": "the lead's number opted out",
        "fields": None,
    }
    assert outbound_count(context, tenant) == before


def test_a_lead_without_a_phone_cannot_be_texted(
    client: TestClient, context: TaskContext, make_tenant: Callable[[], Tenant]
) -> None:
    tenant = make_tenant()
    lead_id = add_lead(context, tenant.id, email="mail-only@example.com")
    refused = client.post(
        f"/v1/leads/{lead_id}/messages", json={"body": "Hi"}, headers=tenant.auth("member")
    )
    assert (refused.status_code, refused.json()["error"]) == (409, "no_phone")


def test_conversation_pages_in_order(
    client: TestClient, context: TaskContext, make_tenant: Callable[[], Tenant]
) -> None:
    tenant = make_tenant()
    lead_id = add_lead(context, tenant.id, phone=PHONE)
    for n in range(5):
        add_inbound_message(context, tenant.id, lead_id, f"message {n}")
    url = f"/v1/leads/{lead_id}/messages"
    first = client.get(url, params={"limit": 3}, headers=tenant.auth("member")).json()
    rest = client.get(
        url, params={"limit": 3, "cursor": first["next_cursor"]}, headers=tenant.auth("member")
    ).json()
    bodies = [m["body"] for m in first["data"] + rest["data"]]
    assert bodies == [f"message {n}" for n in range(5)]
    assert rest["next_cursor"] is None
