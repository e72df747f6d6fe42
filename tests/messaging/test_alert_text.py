"""The business can tell a new lead from an update to one it already has."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

import dramatiq
import pytest
from starlette.testclient import TestClient

from leadline.sandbox import SandboxState
from models.alert_settings import set_template
from models.message_templates import DEFAULT_TEMPLATES
from tests.helpers import wait_for
from tests.support.messaging import (
    add_alert_number,
    link_chat,
    messages_settled,
    random_phone,
    sent_to,
)
from tests.support.services import MakeOrg, Org

if TYPE_CHECKING:
    from tasks.context import TaskContext

pytestmark = pytest.mark.integration

LEAD_PHONE = "+14155550161"


def post_lead(client: TestClient, org: Org, body: dict[str, Any]) -> None:
    response = client.post("/v1/leads", json=body, headers=org.auth)
    assert response.status_code == 202


def bodies(state: SandboxState, to: str) -> list[str]:
    return [record["body"] for record in sent_to(state, to)]


def test_first_post_says_new_lead_and_second_says_lead_updated(
    client: TestClient,
    worker: dramatiq.Worker,
    make_org: MakeOrg,
    context: TaskContext,
    sandbox_state: SandboxState,
) -> None:
    org = make_org("Acme Roofing")
    owner, chat = random_phone(), 777000 + uuid.uuid4().int % 999
    add_alert_number(context, org.id, owner)
    link_chat(context, org.id, chat)

    post_lead(client, org, {"name": "Ada", "phone": LEAD_PHONE, "message": "Roof leaks"})
    wait_for(lambda: messages_settled(context, org.id, 2))
    post_lead(client, org, {"phone": LEAD_PHONE, "message": "Any update?"})
    wait_for(lambda: messages_settled(context, org.id, 4))

    first_sms, second_sms = bodies(sandbox_state, owner)
    assert first_sms.startswith("New lead for Acme Roofing: Ada") and "Roof leaks" in first_sms
    assert (
        second_sms.startswith("Lead updated for Acme Roofing: Ada") and "Any update?" in second_sms
    )
    first_chat, second_chat = bodies(sandbox_state, str(chat))
    assert first_chat.startswith("New lead (api)")
    assert second_chat.startswith("Lead updated (api)") and "Any update?" in second_chat


def test_the_update_text_is_set_per_org_like_every_template(
    client: TestClient,
    worker: dramatiq.Worker,
    make_org: MakeOrg,
    context: TaskContext,
    sandbox_state: SandboxState,
) -> None:
    assert {"lead_updated_sms", "lead_updated_telegram"} <= set(DEFAULT_TEMPLATES)
    org = make_org()
    owner = random_phone()
    add_alert_number(context, org.id, owner)
    with context.db.tenant(org.id) as session:
        set_template(session, org.id, "lead_updated_sms", "{name} wrote again: {message}")

    post_lead(client, org, {"name": "Bo", "phone": LEAD_PHONE, "message": "Hello"})
    wait_for(lambda: messages_settled(context, org.id, 1))
    post_lead(client, org, {"phone": LEAD_PHONE, "message": "Still there?"})
    wait_for(lambda: messages_settled(context, org.id, 2))

    assert bodies(sandbox_state, owner)[1] == "Bo wrote again: Still there?"
