"""The provider sandbox, exercised over real sockets on 127.0.0.1 with the real clients."""

import re
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import requests
from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from leadline.sandbox import SandboxServer, SandboxState, create_sandbox_app

pytestmark = pytest.mark.unit

ACCOUNT_SID = "AC" + "0" * 32
AUTH_TOKEN = "sandbox-auth-token"
BOT_TOKEN = "123456:sandbox-bot-token"
SENDER = "+15550000001"
LEAD = "+15550000002"
OTHER_LEAD = "+15550000003"
DROPPED = (httpx.RemoteProtocolError, httpx.ReadError)


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer() as server:
        yield server


@pytest.fixture(autouse=True)
def fresh_state(sandbox: SandboxServer) -> None:
    sandbox.state.clear()


@pytest.fixture
def http(sandbox: SandboxServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sandbox.url, trust_env=False, timeout=5) as client:
        yield client


@pytest.fixture
def twilio(sandbox: SandboxServer) -> Client:
    return twilio_client(sandbox.url)


def twilio_client(url: str, token: str = AUTH_TOKEN) -> Client:
    client = Client(ACCOUNT_SID, token, http_client=TwilioHttpClient(timeout=5))
    # Pin everything that could route the SDK anywhere but the sandbox.
    client.edge = client.region = None
    client.http_client.session.trust_env = False
    client.api.base_url = url
    return client


def send_sms(twilio: Client, to: str = LEAD, body: str = "Hello from Leadline") -> Any:
    return twilio.messages.create(to=to, from_=SENDER, body=body)


def send_telegram(
    http: httpx.Client, chat_id: int | str = 4242, text: str = "hi"
) -> httpx.Response:
    return http.post(f"/bot{BOT_TOKEN}/sendMessage", json={"chat_id": chat_id, "text": text})


def script(http: httpx.Client, responses: list[dict[str, Any]], **fields: Any) -> None:
    answer = http.post("/behaviour", json={"responses": responses, **fields})
    assert answer.status_code == 201, answer.text


def test_twilio_sdk_parses_the_created_message(sandbox: SandboxServer, twilio: Client) -> None:
    message = twilio.messages.create(
        to=LEAD, from_=SENDER, body="Hello", status_callback="http://127.0.0.1:9/status"
    )

    assert re.fullmatch(r"SM[0-9a-f]{32}", message.sid)
    assert (message.account_sid, message.to, message.from_, message.body) == (
        ACCOUNT_SID,
        LEAD,
        SENDER,
        "Hello",
    )
    assert (message.status, message.direction, message.num_segments) == (
        "queued",
        "outbound-api",
        "1",
    )
    assert isinstance(message.date_created, datetime)
    assert message.uri == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{message.sid}.json"
    [record] = sandbox.state.sent()
    assert record["channel"] == "sms"
    assert (record["to"], record["from"], record["body"]) == (LEAD, SENDER, "Hello")
    assert record["sid"] == message.sid
    assert record["status_callback"] == "http://127.0.0.1:9/status"
    assert record["dropped_after"] is False


def test_twilio_messaging_service_without_from_is_accepted(
    sandbox: SandboxServer, twilio: Client
) -> None:
    service = "MG" + "1" * 32
    message = twilio.messages.create(to=LEAD, messaging_service_sid=service, body="Hi")

    assert (message.status, message.from_, message.messaging_service_sid) == (
        "accepted",
        None,
        service,
    )
    assert sandbox.state.sent()[0]["messaging_service_sid"] == service


@pytest.mark.parametrize(
    ("body", "segments"),
    [
        ("a" * 160, "1"),
        ("a" * 161, "2"),
        ("{" * 80, "1"),  # extension characters cost two septets
        ("{" * 81, "2"),
        ("é" * 160, "1"),  # still GSM-7
        ("😀" * 35, "1"),  # UCS-2: 70 code units
        ("😀" * 36, "2"),
    ],
)
def test_twilio_num_segments(twilio: Client, body: str, segments: str) -> None:
    assert send_sms(twilio, body=body).num_segments == segments


@pytest.mark.parametrize(
    ("response", "status", "code"),
    [
        ({"twilio_error": 21610}, 400, 21610),
        ({"twilio_error": 20429}, 429, 20429),
        ({"status": 429}, 429, 20429),
        ({"status": 500}, 500, 20500),
    ],
)
def test_twilio_scripted_errors_raise_rest_exception(
    sandbox: SandboxServer,
    twilio: Client,
    http: httpx.Client,
    response: dict[str, Any],
    status: int,
    code: int,
) -> None:
    script(http, [response], channel="sms")

    with pytest.raises(TwilioRestException) as raised:
        send_sms(twilio)

    assert (raised.value.status, raised.value.code) == (status, code)
    assert sandbox.state.sent() == []
    send_sms(twilio)
    assert len(sandbox.state.sent()) == 1


def test_twilio_error_wire_shape(http: httpx.Client) -> None:
    script(http, [{"twilio_error": 21610}], channel="sms")

    answer = http.post(
        f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json",
        data={"To": LEAD, "From": SENDER, "Body": "x"},
        auth=(ACCOUNT_SID, AUTH_TOKEN),
    )

    assert answer.status_code == 400
    assert answer.json() == {
        "code": 21610,
        "message": "Attempt to send to unsubscribed recipient",
        "more_info": "https://www.twilio.com/docs/errors/21610",
        "status": 400,
    }


def test_twilio_missing_field_fails_without_using_up_the_script(
    sandbox: SandboxServer, twilio: Client, http: httpx.Client
) -> None:
    script(http, [{"twilio_error": 21610}], channel="sms")

    with pytest.raises(TwilioRestException) as raised:
        twilio.messages.create(from_=SENDER, body="x", to="")
    assert (raised.value.status, raised.value.code) == (400, 21604)

    with pytest.raises(TwilioRestException) as raised:
        send_sms(twilio)
    assert raised.value.code == 21610


@pytest.mark.parametrize(
    "auth",
    [None, ("AC" + "9" * 32, AUTH_TOKEN)],
    ids=["no-credentials", "username-is-not-the-path-sid"],
)
def test_twilio_rejects_missing_or_mismatched_basic_auth(
    sandbox: SandboxServer, http: httpx.Client, auth: tuple[str, str] | None
) -> None:
    answer = http.post(
        f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json",
        data={"To": LEAD, "From": SENDER, "Body": "x"},
        auth=auth or httpx.USE_CLIENT_DEFAULT,
    )

    assert answer.status_code == 401
    assert answer.json() == {
        "code": 20003,
        "message": "Authenticate",
        "more_info": "https://www.twilio.com/docs/errors/20003",
        "status": 401,
    }
    assert sandbox.state.stats() == {"requests": 1, "accepted": 0}


def test_configured_credentials_are_enforced() -> None:
    state = SandboxState(twilio_auth=(ACCOUNT_SID, AUTH_TOKEN), telegram_token=BOT_TOKEN)
    with SandboxServer(state) as strict, httpx.Client(base_url=strict.url, trust_env=False) as http:
        with pytest.raises(TwilioRestException) as raised:
            send_sms(twilio_client(strict.url, token="wrong-token"))
        assert (raised.value.status, raised.value.code) == (401, 20003)
        send_sms(twilio_client(strict.url))

        wrong_bot = http.post("/bot1:wrong/sendMessage", json={"chat_id": 1, "text": "x"})
        assert wrong_bot.status_code == 401
        assert wrong_bot.json() == {"ok": False, "error_code": 401, "description": "Unauthorized"}
        assert send_telegram(http).status_code == 200

        assert [record["channel"] for record in state.sent()] == ["sms", "telegram"]


def test_telegram_send_message_json_and_form(sandbox: SandboxServer, http: httpx.Client) -> None:
    first = send_telegram(http, chat_id=4242, text="hi")
    second = http.post(f"/bot{BOT_TOKEN}/sendMessage", data={"chat_id": "4242", "text": "again"})

    assert first.status_code == second.status_code == 200
    result = first.json()["result"]
    assert first.json()["ok"] is True
    assert result["chat"] == {"id": 4242, "type": "private"}
    assert result["text"] == "hi"
    assert abs(result["date"] - time.time()) < 60
    assert second.json()["result"]["chat"]["id"] == 4242
    assert second.json()["result"]["message_id"] == result["message_id"] + 1
    assert [(r["channel"], r["to"], r["body"]) for r in sandbox.state.sent()] == [
        ("telegram", "4242", "hi"),
        ("telegram", "4242", "again"),
    ]
    assert sandbox.state.sent()[0]["message_id"] == result["message_id"]


@pytest.mark.parametrize(
    ("response", "status", "body"),
    [
        (
            {"telegram_error": 429, "retry_after": 2},
            429,
            {
                "ok": False,
                "error_code": 429,
                "description": "Too Many Requests: retry after 2",
                "parameters": {"retry_after": 2},
            },
        ),
        (
            {"telegram_error": 403},
            403,
            {
                "ok": False,
                "error_code": 403,
                "description": "Forbidden: bot was blocked by the user",
            },
        ),
        (
            {"telegram_error": 400},
            400,
            {"ok": False, "error_code": 400, "description": "Bad Request: chat not found"},
        ),
        (
            {"status": 500},
            500,
            {"ok": False, "error_code": 500, "description": "Internal Server Error"},
        ),
    ],
)
def test_telegram_scripted_errors(
    sandbox: SandboxServer,
    http: httpx.Client,
    response: dict[str, Any],
    status: int,
    body: dict[str, Any],
) -> None:
    script(http, [response], channel="telegram")

    answer = send_telegram(http)

    assert (answer.status_code, answer.json()) == (status, body)
    assert sandbox.state.sent() == []
    assert send_telegram(http).status_code == 200


def test_telegram_missing_chat_id(http: httpx.Client) -> None:
    answer = http.post(f"/bot{BOT_TOKEN}/sendMessage", json={"text": "x"})

    assert answer.status_code == 400
    assert answer.json()["description"] == "Bad Request: chat_id is empty"


def test_delay_then_accept(sandbox: SandboxServer, http: httpx.Client) -> None:
    script(http, [{"delay": 0.3}])

    started = time.monotonic()
    answer = send_telegram(http)

    assert time.monotonic() - started >= 0.3
    assert answer.status_code == 200
    assert len(sandbox.state.sent()) == 1


def test_drop_before_answers_nothing_and_records_nothing(
    sandbox: SandboxServer, http: httpx.Client
) -> None:
    script(http, [{"drop": "before"}])

    with pytest.raises(DROPPED):
        send_telegram(http)

    assert sandbox.state.sent() == []
    assert http.get("/stats").json() == {"requests": 1, "accepted": 0}
    assert send_telegram(http).status_code == 200


def test_drop_after_records_the_message_but_answers_nothing(
    sandbox: SandboxServer, http: httpx.Client
) -> None:
    script(http, [{"drop": "after"}], channel="telegram")

    with pytest.raises(DROPPED):
        send_telegram(http, text="lost answer")

    [record] = http.get("/sent").json()
    assert (record["body"], record["dropped_after"]) == ("lost answer", True)
    assert http.get("/stats").json() == {"requests": 1, "accepted": 1}


def test_drop_after_reaches_the_twilio_sdk_as_a_connection_error(
    sandbox: SandboxServer, twilio: Client, http: httpx.Client
) -> None:
    script(http, [{"drop": "after"}], channel="sms")

    with pytest.raises(requests.exceptions.ConnectionError):
        send_sms(twilio)

    # Exactly one request: neither the SDK nor urllib3 resent the message behind our back.
    assert sandbox.state.stats() == {"requests": 1, "accepted": 1}
    assert sandbox.state.sent()[0]["dropped_after"] is True


def test_scripts_match_channel_and_recipient_in_order(twilio: Client, http: httpx.Client) -> None:
    script(http, [{"twilio_error": 21610}], channel="sms", match_to=LEAD)
    script(http, [{"telegram_error": 403}], channel="telegram")
    script(http, [{"status": 500}, {"status": 429}])

    def sms_error(to: str) -> int:
        with pytest.raises(TwilioRestException) as raised:
            send_sms(twilio, to=to)
        return int(raised.value.code)

    assert sms_error(OTHER_LEAD) == 20500  # the LEAD-only script does not match
    assert send_telegram(http).status_code == 403  # the telegram script comes first
    assert sms_error(LEAD) == 21610
    assert sms_error(LEAD) == 20429
    assert send_telegram(http).status_code == 200  # everything used up
    send_sms(twilio, to=LEAD)


def test_push_behaviour_python_api(sandbox: SandboxServer, http: httpx.Client) -> None:
    sandbox.state.push_behaviour([{"status": 500}], channel="telegram", match_to=77)

    assert send_telegram(http, chat_id=76).status_code == 200
    assert send_telegram(http, chat_id=77).status_code == 500


@pytest.mark.parametrize(
    "payload",
    [
        {"responses": []},
        {"responses": "drop"},
        {"channel": "fax", "responses": [{"status": 500}]},
        {"responses": [{"twilio_error": 21610}]},
        {"channel": "sms", "responses": [{"telegram_error": 403}]},
        {"responses": [{"status": 200}]},
        {"responses": [{"delay": -1}]},
        {"responses": [{"drop": "sideways"}]},
        {"responses": [{"dely": 1}]},
        {"responses": [{"status": 500, "delay": 1}]},
        [{"status": 500}],
    ],
)
def test_invalid_behaviour_is_rejected(
    sandbox: SandboxServer, http: httpx.Client, payload: Any
) -> None:
    answer = http.post("/behaviour", json=payload)

    assert answer.status_code == 400
    assert "invalid behaviour" in answer.json()["error"]
    assert send_telegram(http).status_code == 200


def test_push_behaviour_raises_value_error(sandbox: SandboxServer) -> None:
    with pytest.raises(ValueError, match="exactly one"):
        sandbox.state.push_behaviour([{"delay": 1, "drop": "after"}])


def test_sent_and_stats_then_delete_clears_everything(
    sandbox: SandboxServer, twilio: Client, http: httpx.Client
) -> None:
    sms = send_sms(twilio)
    telegram = send_telegram(http).json()["result"]

    sent = http.get("/sent").json()
    assert sent == sandbox.state.sent()
    assert [(r["channel"], r["request"]) for r in sent] == [("sms", 1), ("telegram", 2)]
    assert (sent[0]["sid"], sent[0]["from"]) == (sms.sid, SENDER)
    assert sent[1]["message_id"] == telegram["message_id"]
    assert all(datetime.fromisoformat(r["time"]).tzinfo is not None for r in sent)
    assert http.get("/stats").json() == {"requests": 2, "accepted": 2}

    script(http, [{"status": 500}])
    assert http.delete("/sent").status_code == 204

    assert http.get("/sent").json() == []
    assert http.get("/stats").json() == {"requests": 0, "accepted": 0}
    assert send_telegram(http).status_code == 200  # the queued 500 went too


def test_concurrent_requests_are_all_recorded(sandbox: SandboxServer) -> None:
    def send(chat_id: int) -> None:
        with httpx.Client(base_url=sandbox.url, trust_env=False, timeout=5) as client:
            assert send_telegram(client, chat_id=chat_id).status_code == 200

    threads = [threading.Thread(target=send, args=(n,)) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    sent = sandbox.state.sent()
    assert sorted(int(r["to"]) for r in sent) == list(range(20))
    assert len({r["message_id"] for r in sent}) == 20


def test_server_lifecycle(sandbox: SandboxServer) -> None:
    server = SandboxServer()
    with pytest.raises(RuntimeError):
        _ = server.url

    with server:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", server.url)
        assert server.port not in (0, sandbox.port)
        assert httpx.get(f"{server.url}/sent", trust_env=False).json() == []
        url = server.url

    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/sent", trust_env=False)


def test_busy_port_fails_in_start(sandbox: SandboxServer) -> None:
    with pytest.raises(OSError):
        SandboxServer(port=sandbox.port).start()


def test_create_sandbox_app_exposes_its_state() -> None:
    state = SandboxState()

    assert create_sandbox_app(state).state.sandbox is state
    assert isinstance(create_sandbox_app().state.sandbox, SandboxState)


def test_twilio_message_list_through_the_sdk_filters_and_pages(
    twilio: Client, http: httpx.Client
) -> None:
    bodies = [f"to lead #{n}" for n in range(5)]
    for body in bodies:
        send_sms(twilio, body=body)
    send_sms(twilio, to=OTHER_LEAD, body="someone else")
    today = datetime.now(UTC).strftime("%Y-%m-%d")

    listed = twilio.messages.list(to=LEAD, date_sent_after=today, page_size=2)

    assert [m.body for m in listed] == list(reversed(bodies))  # newest first, all pages
    assert {(m.to, m.from_, m.status) for m in listed} == {(LEAD, SENDER, "sent")}
    assert all(m.date_sent is not None and m.sid.startswith("SM") for m in listed)
    assert twilio.messages.list(to=LEAD, date_sent_after=datetime(2999, 1, 1, tzinfo=UTC)) == []
    assert [m.body for m in twilio.messages.list(from_=SENDER, to=OTHER_LEAD)] == ["someone else"]


def test_twilio_message_list_wire_shape(twilio: Client, http: httpx.Client) -> None:
    send_sms(twilio, body="one")
    send_sms(twilio, body="two")
    path = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"

    page = http.get(path, params={"To": LEAD, "PageSize": 1}, auth=(ACCOUNT_SID, AUTH_TOKEN))

    data = page.json()
    assert page.status_code == 200
    assert (data["page"], data["page_size"], data["start"], data["end"]) == (0, 1, 0, 0)
    assert [m["body"] for m in data["messages"]] == ["two"]
    assert data["next_page_uri"].startswith(path) and "Page=1" in data["next_page_uri"]
    assert data["previous_page_uri"] is None
    second = http.get(data["next_page_uri"], auth=(ACCOUNT_SID, AUTH_TOKEN)).json()
    assert [m["body"] for m in second["messages"]] == ["one"] and second["next_page_uri"] is None
    assert (
        http.get(path, params={"DateSent>": "yesterday"}, auth=(ACCOUNT_SID, "x")).status_code
        == 400
    )
    assert http.get(path, params={"To": LEAD}).status_code == 401


def test_twilio_message_list_includes_a_message_whose_answer_was_dropped(
    twilio: Client, http: httpx.Client
) -> None:
    script(http, [{"drop": "after"}], channel="sms")
    with pytest.raises(requests.exceptions.ConnectionError):
        send_sms(twilio, body="answer lost")

    assert [m.body for m in twilio.messages.list(to=LEAD)] == ["answer lost"]
