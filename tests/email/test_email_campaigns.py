"""Email campaigns through Postmark (the provider sandbox): consent, suppression by bounce and
one-click unsubscribe, the unsubscribe headers, and no address in the logs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import dramatiq
import httpx
import pytest
from starlette.testclient import TestClient

from leadline.sandbox import SandboxServer, SandboxState
from tasks.context import TaskContext
from tests.helpers import wait_for
from tests.support.email import (
    bounce,
    distinct_emails,
    inbound_count,
    make_email_leads,
    post_hook,
    sandbox_emails,
    set_email_from,
    suppression_count,
)
from tests.support.messaging import messages_settled
from tests.support.services import MakeOrg, Org

pytestmark = pytest.mark.integration


def launch(client: TestClient, org: Org, key: str, **body: Any) -> str:
    payload = {"name": "Spring check-up", "template": "Hi {name}, time for a roof check?"}
    payload.update(channel="email", **body)
    response = client.post(
        "/v1/campaigns", json=payload, headers={**org.auth, "Idempotency-Key": key}
    )
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def counts(client: TestClient, org: Org, campaign_id: str) -> dict[str, Any]:
    response = client.get(f"/v1/campaigns/{campaign_id}", headers=org.auth)
    assert response.status_code == 200
    return dict(response.json()["counts"])


def unsubscribe_url(record: dict[str, Any]) -> str:
    header = record["headers"]["List-Unsubscribe"]
    assert header.startswith("<") and header.endswith(">")
    return str(header[1:-1])


def local_path(url: str) -> str:
    return "/" + url.split("/", 3)[3]


def test_a_bounced_and_an_unsubscribed_address_get_no_more_campaign_email(
    client: TestClient,
    worker: dramatiq.Worker,
    make_org: MakeOrg,
    context: TaskContext,
    provider_sandbox: SandboxServer,
    sandbox_state: SandboxState,
    log_lines: Callable[[], list[dict[str, Any]]],
) -> None:
    org = make_org()
    sender = set_email_from(context, org.id)
    emails = distinct_emails(5)
    bounced, unsubscribed, others, no_consent = emails[0], emails[1], emails[2:4], emails[4]
    make_email_leads(context, org.id, emails[:4])
    make_email_leads(context, org.id, [no_consent], consent=False)

    first = launch(client, org, "spring-email")
    wait_for(lambda: messages_settled(context, org.id, 4))
    sent = {record["to"]: record for record in sandbox_emails(provider_sandbox)}
    assert set(sent) == set(emails[:4])  # the lead without email consent gets nothing

    # Postmark reports a hard bounce for one (with the Metadata the email carried) ...
    hook = bounce(bounced, org.id, Metadata=sent[bounced]["metadata"])
    assert post_hook(client, hook).status_code == 200
    wait_for(lambda: inbound_count(context, org.id, "processed") == 1)
    # ... and another clicks one-click unsubscribe in their mail client (RFC 8058).
    url = unsubscribe_url(sent[unsubscribed])
    answer = client.post(
        local_path(url),
        content=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert answer.status_code == 200 and "unsubscribed" in answer.text
    assert suppression_count(context, org.id) == 2

    sandbox_state.clear()
    second = launch(client, org, "summer-email", name="Summer check-up")
    wait_for(lambda: messages_settled(context, org.id, 8))

    records = sandbox_emails(provider_sandbox)
    assert sorted(record["to"] for record in records) == sorted(others)
    assert counts(client, org, second) == {
        "targeted": 4,
        "queued": 0,
        "sent": 2,
        "delivered": 0,
        "blocked": 2,
        "failed": 0,
        "unknown": 0,
        "held": 0,
    }
    assert counts(client, org, first)["sent"] == 4
    for record in records:
        assert record["from"] == sender
        assert record["subject"] == "Summer check-up"
        assert record["message_stream"] == context.settings.postmark_broadcast_stream
        assert record["headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        link = unsubscribe_url(record)
        assert link.startswith(context.settings.leadline_public_url + "/unsubscribe/")
        assert record["to"] not in link and record["to"].split("@")[0] not in link
        assert link in record["body"]  # the text says how to unsubscribe too

    logged = str(log_lines())
    assert all(email not in logged for email in emails)
    assert all(email.split("@")[0] not in logged for email in emails)


def test_an_email_campaign_needs_a_sender_address(client: TestClient, make_org: MakeOrg) -> None:
    org = make_org()
    response = client.post(
        "/v1/campaigns",
        json={"name": "n", "template": "Hi {name}", "channel": "email"},
        headers={**org.auth, "Idempotency-Key": "no-sender"},
    )
    assert response.status_code == 422
    assert response.json()["error"] == "email_not_configured"


def test_an_email_campaign_refuses_sms_consent_as_its_filter(
    client: TestClient, make_org: MakeOrg, context: TaskContext
) -> None:
    org = make_org()
    set_email_from(context, org.id)
    response = client.post(
        "/v1/campaigns",
        json={"name": "n", "template": "Hi", "channel": "email", "filter": {"consent": "sms"}},
        headers={**org.auth, "Idempotency-Key": "wrong-consent"},
    )
    assert response.status_code == 422


def test_email_consent_comes_from_the_lead_api_with_its_wording(
    client: TestClient,
    worker: dramatiq.Worker,
    make_org: MakeOrg,
    context: TaskContext,
    provider_sandbox: SandboxServer,
) -> None:
    org = make_org()
    set_email_from(context, org.id)
    given, sms_only = distinct_emails(2)
    consent = {"email": True, "text": "Email me offers"}
    leads = [
        {"email": given, "consent": consent},
        {"email": sms_only, "phone": "+14155550111", "consent": {"sms": True, "text": "Text me"}},
    ]
    for body in leads:
        assert client.post("/v1/leads", json=body, headers=org.auth).status_code == 202
    no_wording = {"email": given, "consent": {"email": True}}
    assert client.post("/v1/leads", json=no_wording, headers=org.auth).status_code == 422
    no_address = {"phone": "+14155550112", "consent": {"email": True, "text": "Email me"}}
    assert client.post("/v1/leads", json=no_address, headers=org.auth).status_code == 422
    wait_for(lambda: inbound_count(context, org.id, "processed") == 2)

    launch(client, org, "consented-only")
    wait_for(lambda: messages_settled(context, org.id, 1))
    assert [record["to"] for record in sandbox_emails(provider_sandbox)] == [given]


def test_postmark_refusing_an_inactive_address_suppresses_it(
    client: TestClient,
    worker: dramatiq.Worker,
    make_org: MakeOrg,
    context: TaskContext,
    sandbox_state: SandboxState,
) -> None:
    org = make_org()
    set_email_from(context, org.id)
    inactive, fine = distinct_emails(2)
    make_email_leads(context, org.id, [inactive, fine])
    sandbox_state.push_behaviour([{"postmark_error": 406}], channel="email", match_to=inactive)

    launch(client, org, "inactive")
    wait_for(lambda: messages_settled(context, org.id, 2))

    assert [record["to"] for record in sandbox_state.sent()] == [fine]
    assert suppression_count(context, org.id) == 1


def test_a_postmark_outage_is_retried_and_sends_once(
    client: TestClient,
    worker: dramatiq.Worker,
    make_org: MakeOrg,
    context: TaskContext,
    sandbox_state: SandboxState,
) -> None:
    org = make_org()
    set_email_from(context, org.id)
    (address,) = distinct_emails(1)
    make_email_leads(context, org.id, [address])
    sandbox_state.push_behaviour([{"status": 503}, {"status": 429}], channel="email")

    launch(client, org, "outage")
    wait_for(lambda: messages_settled(context, org.id, 1))

    assert [record["to"] for record in sandbox_state.sent()] == [address]


def test_the_sandbox_refuses_email_without_a_server_token(provider_sandbox: SandboxServer) -> None:
    answer = httpx.post(
        f"{provider_sandbox.url}/email",
        json={"From": "a@example.com", "To": "b@example.com", "TextBody": "hi"},
        timeout=5,
    )
    assert answer.status_code == 401 and answer.json()["ErrorCode"] == 10
