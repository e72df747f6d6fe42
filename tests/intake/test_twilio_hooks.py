"""Twilio webhooks: signed over the public URL and every form value; routed by number."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING

import dramatiq
import pytest
from starlette.testclient import TestClient

from tests.helpers import wait_for
from tests.support.intake import events_of, events_settled
from tests.support.services import MakeOrg, Org
from tests.support.signing import TWILIO_TOKEN, twilio_form, twilio_json

if TYPE_CHECKING:
    from tasks.context import TaskContext

pytestmark = pytest.mark.integration

SMS = "/hooks/twilio/sms"
STATUS = "/hooks/twilio/status"


def sid() -> str:
    return "SM" + secrets.token_hex(16)


def inbound(
    to: str, message_sid: str, body: str = "Hi, is this available?"
) -> list[tuple[str, str]]:
    return [("MessageSid", message_sid), ("From", "+14155550123"), ("To", to), ("Body", body)]


def test_inbound_sms_is_verified_stored_and_processed(
    client: TestClient,
    worker: dramatiq.Worker,
    org_number: tuple[Org, str],
    context: TaskContext,
) -> None:
    org, number = org_number
    message_sid = sid()
    body, headers = twilio_form(inbound(number, message_sid), SMS)

    response = client.post(SMS, content=body, headers=headers)

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/xml")
    assert response.text.endswith("<Response/>")
    wait_for(lambda: events_settled(context, org.id, 1))
    [event] = events_of(context, org.id)
    assert (event.source, event.external_id) == ("twilio_sms", message_sid)
    assert event.status in {"processed", "failed"}  # handled by the alerts feature once merged
    assert b"available" not in (event.payload_ct or b"")


def test_repeated_parameter_is_signed_and_verified(
    client: TestClient,
    org_number: tuple[Org, str],
    context: TaskContext,
) -> None:
    org, number = org_number
    params = [
        *inbound(number, sid()),
        ("MediaUrl", "https://a.example/1"),
        ("MediaUrl", "https://a.example/2"),
    ]
    body, headers = twilio_form(params, SMS)
    assert client.post(SMS, content=body, headers=headers).status_code == 200

    # The same signature with one of the repeated values changed must fail.
    tampered = body.replace(b"%2F2", b"%2F3")
    assert tampered != body
    assert client.post(SMS, content=tampered, headers=headers).status_code == 403
    assert len(events_of(context, org.id)) == 1


def test_json_status_callback_verifies_with_body_sha256(
    client: TestClient,
    worker: dramatiq.Worker,
    org_number: tuple[Org, str],
    context: TaskContext,
) -> None:
    org, number = org_number
    message_sid = sid()
    data = {
        "MessageSid": message_sid,
        "MessageStatus": "delivered",
        "From": number,
        "To": "+14155550123",
    }
    path, body, headers = twilio_json(data, STATUS)

    assert client.post(path, content=body, headers=headers).status_code == 204
    wait_for(lambda: events_settled(context, org.id, 1))
    [event] = events_of(context, org.id)
    assert (event.source, event.external_id) == ("twilio_status", f"{message_sid}:delivered")

    tampered = body.replace(b"delivered", b"undelivered")
    assert client.post(path, content=tampered, headers=headers).status_code == 403
    assert len(events_of(context, org.id)) == 1


def test_status_callback_routes_by_signed_org_parameter(
    client: TestClient, make_org: MakeOrg, context: TaskContext
) -> None:
    org = make_org()
    params = [("MessageSid", sid()), ("MessageStatus", "sent"), ("From", "+15005550006")]
    body, headers = twilio_form(params, STATUS, query=f"org={org.id}")
    assert client.post(f"{STATUS}?org={org.id}", content=body, headers=headers).status_code == 204
    assert [e.source for e in events_of(context, org.id)] == ["twilio_status"]

    other = make_org()  # the org in the URL is signed: swapping it breaks the signature
    assert client.post(f"{STATUS}?org={other.id}", content=body, headers=headers).status_code == 403
    assert events_of(context, other.id) == []


def test_each_status_is_its_own_event_and_a_replay_is_one(
    client: TestClient,
    org_number: tuple[Org, str],
    context: TaskContext,
) -> None:
    org, number = org_number
    message_sid = sid()
    for status in ("sent", "delivered", "delivered"):
        params = [("MessageSid", message_sid), ("MessageStatus", status), ("From", number)]
        body, headers = twilio_form(params, STATUS)
        assert client.post(STATUS, content=body, headers=headers).status_code == 204
    assert sorted(e.external_id for e in events_of(context, org.id)) == [
        f"{message_sid}:delivered",
        f"{message_sid}:sent",
    ]


def test_bad_or_missing_signatures_are_403_and_store_nothing(
    client: TestClient,
    org_number: tuple[Org, str],
    context: TaskContext,
) -> None:
    org, number = org_number
    params = inbound(number, sid(), body="Secret body text")
    body, headers = twilio_form(params, SMS)
    _, wrong_secret = twilio_form(params, SMS, token="not-" + TWILIO_TOKEN)
    cases = [
        (body.replace(b"Secret", b"Public"), headers),  # tampered body
        (body, wrong_secret),  # signed with another token
        (body, {"Content-Type": headers["Content-Type"]}),  # no signature
        (body, {**headers, "X-Twilio-Signature": "AAAA"}),  # garbage signature
    ]
    for content, sent_headers in cases:
        response = client.post(SMS, content=content, headers=sent_headers)
        assert response.status_code == 403
        assert response.json() == {"error": "verification failed"}
        assert "Secret" not in response.text
    assert events_of(context, org.id) == []


def test_signature_for_the_internal_url_is_refused(
    client: TestClient,
    make_org: MakeOrg,
    add_number: Callable[[uuid.UUID], str],
    context: TaskContext,
) -> None:
    """Behind a proxy the signed URL is the public one; a request signed for the URL the app
    sees internally (http://testserver/...) must not verify."""
    from starlette.datastructures import MultiDict
    from twilio.request_validator import RequestValidator

    org = make_org()
    params = inbound(add_number(org.id), sid())
    body, headers = twilio_form(params, SMS)
    headers["X-Twilio-Signature"] = RequestValidator(TWILIO_TOKEN).compute_signature(
        f"http://testserver{SMS}", MultiDict(params)
    )
    assert client.post(SMS, content=body, headers=headers).status_code == 403


def test_unknown_number_is_404_after_verification(client: TestClient, context: TaskContext) -> None:
    body, headers = twilio_form(inbound("+19175550148", sid()), SMS)
    response = client.post(SMS, content=body, headers=headers)
    assert response.status_code == 404
    assert response.json() == {"error": "unknown number"}


def test_wrong_content_type_is_415_and_missing_sid_is_400(
    client: TestClient, make_org: MakeOrg, add_number: Callable[[uuid.UUID], str]
) -> None:
    org = make_org()
    number = add_number(org.id)
    assert client.post(SMS, content=b"x", headers={"Content-Type": "text/plain"}).status_code == 415
    body, headers = twilio_form([("To", number), ("Body", "no sid")], SMS)
    response = client.post(SMS, content=body, headers=headers)
    assert response.status_code == 400
    assert "no sid" not in response.text


def test_unrelated_org_sees_nothing(
    client: TestClient,
    make_org: MakeOrg,
    add_number: Callable[[uuid.UUID], str],
    context: TaskContext,
) -> None:
    org, bystander = make_org(), make_org()
    body, headers = twilio_form(inbound(add_number(org.id), sid()), SMS)
    assert client.post(SMS, content=body, headers=headers).status_code == 200
    assert events_of(context, bystander.id) == []
    assert uuid.UUID(str(events_of(context, org.id)[0].org_id)) == org.id
