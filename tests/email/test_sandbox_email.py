"""The provider sandbox's Postmark (POST /email), over a real socket with httpx."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from leadline.sandbox import SandboxServer, SandboxState

pytestmark = pytest.mark.unit

TOKEN = "sandbox-postmark-token"
EMAIL = {
    "From": "news@roofs.example",
    "To": "lead@example.org",
    "Subject": "Spring",
    "TextBody": "Hi",
    "MessageStream": "broadcast",
    "Headers": [{"Name": "List-Unsubscribe", "Value": "<https://x.example/unsubscribe/t>"}],
    "Metadata": {"leadline_org": "o"},
}


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer(SandboxState(postmark_token=TOKEN)) as server:
        yield server


@pytest.fixture
def http(sandbox: SandboxServer) -> Iterator[httpx.Client]:
    sandbox.state.clear()
    headers = {"X-Postmark-Server-Token": TOKEN, "Accept": "application/json"}
    with httpx.Client(base_url=sandbox.url, headers=headers, trust_env=False, timeout=5) as client:
        yield client


def test_an_accepted_email_is_listed_with_its_headers(http: httpx.Client) -> None:
    answer = http.post("/email", json=EMAIL)
    assert answer.status_code == 200
    body = answer.json()
    assert body["ErrorCode"] == 0 and body["To"] == EMAIL["To"]
    (record,) = http.get("/sent").json()
    assert record["channel"] == "email" and record["message_id"] == body["MessageID"]
    assert record["headers"] == {"List-Unsubscribe": "<https://x.example/unsubscribe/t>"}
    assert (record["subject"], record["body"], record["message_stream"]) == (
        "Spring",
        "Hi",
        "broadcast",
    )


def test_a_wrong_token_or_a_refused_email_records_nothing(http: httpx.Client) -> None:
    wrong = http.post("/email", json=EMAIL, headers={"X-Postmark-Server-Token": "other"})
    assert wrong.status_code == 401 and wrong.json()["ErrorCode"] == 10
    for missing in ("To", "From", "TextBody"):
        email = {key: value for key, value in EMAIL.items() if key != missing}
        refused = http.post("/email", json=email)
        assert refused.status_code == 422 and refused.json()["ErrorCode"] == 300
    assert http.get("/sent").json() == []


def test_scripted_answers_for_email(http: httpx.Client, sandbox: SandboxServer) -> None:
    sandbox.state.push_behaviour([{"postmark_error": 406}, {"status": 503}], channel="email")
    inactive = http.post("/email", json=EMAIL)
    assert inactive.status_code == 422 and inactive.json()["ErrorCode"] == 406
    assert http.post("/email", json=EMAIL).status_code == 503
    assert http.post("/email", json=EMAIL).status_code == 200
    with pytest.raises(ValueError):
        sandbox.state.push_behaviour([{"postmark_error": 406}], channel="sms")
