"""What a dashboard does, in one walk: the owner creates a member key and an ingest key; the
ingest key posts a lead and cannot list it (403); the member lists it, reads the conversation
after the lead texts in, replies, and marks it `contacted`; the audit log shows each step
under its principal, without any personal data."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

import dramatiq
import pytest
from starlette.testclient import TestClient

from leadline.provider_signing import twilio_form
from leadline.sandbox import SandboxState
from leadline.settings import Settings
from models.orgs import create_api_key, create_organization
from tests.helpers import wait_for
from tests.support.intake import add_random_number

if TYPE_CHECKING:
    from tasks.context import TaskContext

pytestmark = pytest.mark.integration
ADA = "+14155550123"
SMS_ROUTE = "/hooks/twilio/sms"


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def text_in(client: TestClient, settings: Settings, business: str, body: str) -> None:
    """Ada texts the business's number: an inbound SMS signed as Twilio signs it."""
    params = [
        ("MessageSid", "SM" + uuid.uuid4().hex),
        ("AccountSid", "AC" + "1" * 32),
        ("From", ADA),
        ("To", business),
        ("Body", body),
        ("NumMedia", "0"),
    ]
    token = settings.twilio_auth_token.get_secret_value()
    content, headers = twilio_form(token, settings.leadline_public_url + SMS_ROUTE, params)
    assert client.post(SMS_ROUTE, content=content, headers=headers).status_code == 200


def test_a_dashboard_walk(
    client: TestClient, context: TaskContext, worker: dramatiq.Worker, sandbox_state: SandboxState
) -> None:
    org_id = uuid.uuid4()
    with context.db.tenant(org_id) as session:
        create_organization(session, context.keyring, org_id, "Acme Roofing", actor="test")
        owner = create_api_key(session, org_id, "test", "owner")
        # a number of its own: the session database is shared (the quick start adds a fixed one)
        business = add_random_number(session, org_id)

    made = [
        client.post("/v1/api-keys", json={"role": role, "label": label}, headers=bearer(owner.key))
        for role, label in (("member", "dashboard"), ("ingest", "web form"))
    ]
    assert [response.status_code for response in made] == [201, 201]
    member, ingest = (response.json() for response in made)

    lead = {"name": "Ada Lovelace", "phone": ADA, "consent": {"sms": True, "text": "I agree"}}
    posted = client.post("/v1/leads", json=lead, headers=bearer(ingest["key"]))
    assert posted.status_code == 202
    refused = client.get("/v1/leads", headers=bearer(ingest["key"]))
    assert (refused.status_code, refused.json()["required_role"]) == (403, "member")

    event = wait_for(
        lambda: (
            (e := client.get(posted.headers["Location"], headers=bearer(ingest["key"])).json())
            and e["status"] == "processed"
            and e
        )
    )
    listed = client.get("/v1/leads", headers=bearer(member["key"])).json()["data"]
    assert [(row["id"], row["name"], row["phone"]) for row in listed] == [
        (event["lead_id"], "Ada Lovelace", ADA)
    ]
    lead_id = event["lead_id"]

    text_in(client, context.settings, business, "Can you come Tuesday?")
    conversation_url = f"/v1/leads/{lead_id}/messages"

    def inbound() -> list[dict[str, Any]]:
        messages = client.get(conversation_url, headers=bearer(member["key"])).json()["data"]
        return [m for m in messages if m["direction"] == "inbound"]

    assert [m["body"] for m in wait_for(inbound)] == ["Can you come Tuesday?"]
    reply = client.post(
        conversation_url, json={"body": "Tuesday at 9 works."}, headers=bearer(member["key"])
    )
    assert reply.status_code == 202
    wait_for(lambda: any(m["body"] == "Tuesday at 9 works." for m in sandbox_state.sent()))
    marked = client.patch(
        f"/v1/leads/{lead_id}", json={"status": "contacted"}, headers=bearer(member["key"])
    )
    assert marked.json()["status"] == "contacted"

    audit = client.get("/v1/audit", params={"limit": 200}, headers=bearer(owner.key)).json()
    steps = [(entry["actor"], entry["action"]) for entry in reversed(audit["data"])]
    owner_key, member_key = f"key:{owner.prefix}", f"key:{member['prefix']}"
    expected = [
        (owner_key, "apikey.created"),  # the member key
        (owner_key, "apikey.created"),  # the ingest key
        (f"key:{ingest['prefix']}", "lead.submitted"),
        (member_key, "message.replied"),
        (member_key, "lead.updated"),
    ]
    principal_steps = [step for step in steps if step[0].startswith("key:")]
    assert principal_steps[-len(expected) :] == expected
    text = str(audit)
    for personal in ("Ada", "Lovelace", ADA, "Tuesday", "I agree"):
        assert personal not in text
