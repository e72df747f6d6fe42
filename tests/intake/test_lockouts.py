"""Lockouts that cannot be turned against users.

Failed authentications are counted per route class and client address, and only after the
credential was checked; the client address comes from X-Forwarded-For only as far as trusted
proxies appended it (LEADLINE_TRUSTED_PROXIES).
"""

from __future__ import annotations

import json
import secrets
import uuid
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import pytest
from starlette.testclient import TestClient

from models.routing import rotate_signing_secret
from tests.support.intake import events_of
from tests.support.services import RUN_ID, MakeOrg, Org
from tests.support.signing import (
    standard_headers,
    telegram_headers,
    telegram_update,
    twilio_form,
)

if TYPE_CHECKING:
    from tasks.context import TaskContext

pytestmark = pytest.mark.integration

FIVE = "5/minute"
PROXY = "127.0.0.1"
ATTACKER = "127.0.0.2"
VICTIM = "127.0.0.3"
BAD_KEY = {"Authorization": "Bearer ll_00000000_not-a-real-key"}
SMS = "/hooks/twilio/sms"
LEAD = {"email": "a@example.com"}

ClientFor = Callable[[str], TestClient]


def namespace() -> str:
    """A fresh namespace per test (still under the run's prefix, so it is cleaned up)."""
    return f"leadline-test-{RUN_ID}-lock-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def clients_with(context: TaskContext) -> Callable[..., ClientFor]:
    """An app with the given settings, and a client for it per peer address."""
    from intake.app import create_app

    def build(**overrides: Any) -> ClientFor:
        settings = context.settings.model_copy(
            update={"leadline_redis_namespace": namespace(), **overrides}
        )
        app = create_app(replace(context, settings=settings))

        def client_from(peer: str) -> TestClient:
            return TestClient(app, raise_server_exceptions=False, client=(peer, 40000))

        return client_from

    return build


def sms_stop(to: str) -> tuple[bytes, dict[str, str]]:
    params = [
        ("MessageSid", "SM" + secrets.token_hex(16)),
        ("From", "+14155550123"),
        ("To", to),
        ("Body", "STOP"),
    ]
    return twilio_form(params, SMS)


def bad_keys(client: TestClient, count: int, **headers: str) -> list[int]:
    return [
        client.post("/v1/leads", json=LEAD, headers={**BAD_KEY, **headers}).status_code
        for _ in range(count)
    ]


def test_bad_api_keys_never_block_a_signed_twilio_stop_from_the_same_address(
    clients_with: Callable[..., ClientFor],
    org_number: tuple[Org, str],
    context: TaskContext,
) -> None:
    client = clients_with(leadline_limit_auth_failures=FIVE)(ATTACKER)
    org, number = org_number

    assert bad_keys(client, 5) == [401] * 5
    locked = client.post("/v1/leads", json=LEAD, headers=BAD_KEY)
    assert locked.status_code == 429 and int(locked.headers["Retry-After"]) >= 1

    body, headers = sms_stop(number)
    response = client.post(SMS, content=body, headers=headers)
    assert response.status_code == 200
    [event] = events_of(context, org.id)
    assert event.source == "twilio_sms"
    # The address's valid API key is not refused for the bad ones either.
    assert client.post("/v1/leads", json=LEAD, headers=org.auth).status_code == 202


def test_a_valid_signature_passes_even_when_its_own_route_class_is_locked(
    clients_with: Callable[..., ClientFor], make_org: MakeOrg
) -> None:
    client = clients_with(leadline_limit_auth_failures=FIVE)(ATTACKER)
    org = make_org()

    def telegram(update_id: int, secret: str | None = None) -> int:
        body = json.dumps(telegram_update(update_id, 4242, "/stop")).encode()
        headers = telegram_headers(secret) if secret else telegram_headers()
        response = client.post(f"/hooks/telegram/{org.id}", content=body, headers=headers)
        return int(response.status_code)

    assert [telegram(n, "wrong-secret") for n in range(5)] == [403] * 5
    assert telegram(5, "wrong-secret") == 429
    assert telegram(6) == 200


def test_signed_leads_and_api_keys_are_locked_apart_and_valid_ones_pass(
    clients_with: Callable[..., ClientFor], make_org: MakeOrg, context: TaskContext
) -> None:
    client = clients_with(leadline_limit_auth_failures=FIVE)(ATTACKER)
    org = make_org()
    with context.db.tenant(org.id) as session:
        secret = rotate_signing_secret(
            session, context.keys.cipher(session, org.id), context.clock()
        )
    body = json.dumps(LEAD).encode()

    def signed(message_id: str, key: str = secret) -> int:
        headers = standard_headers(key, body, org.id, message_id)
        return int(client.post("/v1/leads", content=body, headers=headers).status_code)

    assert bad_keys(client, 6)[-1] == 429
    assert signed("msg_lock_0") == 202  # API-key failures do not touch signed leads
    wrong = "whsec_" + "A" * 32
    assert [signed(f"msg_bad_{n}", wrong) for n in range(6)] == [403] * 5 + [429]
    assert signed("msg_lock_1") == 202  # nor do its own class's failures stop a valid one


def test_route_classes_are_counted_apart(
    clients_with: Callable[..., ClientFor], make_org: MakeOrg
) -> None:
    client = clients_with(leadline_limit_auth_failures=FIVE)(ATTACKER)
    org = make_org()
    assert bad_keys(client, 6)[-1] == 429
    body = json.dumps(telegram_update(1, 4242, "hi")).encode()
    wrong = telegram_headers("wrong-secret")
    refused = client.post(f"/hooks/telegram/{org.id}", content=body, headers=wrong)
    assert refused.status_code == 403  # its own first failure, not the API keys' 429


def test_spoofed_forwarded_for_from_an_untrusted_peer_is_ignored(
    clients_with: Callable[..., ClientFor],
) -> None:
    client_from = clients_with(leadline_limit_auth_failures=FIVE)
    attacker, victim = client_from(ATTACKER), client_from(VICTIM)

    # Naming the victim in the header locks out the attacker, not the victim.
    assert bad_keys(attacker, 5, **{"X-Forwarded-For": VICTIM}) == [401] * 5
    assert bad_keys(victim, 1) == [401]
    # A fresh made-up address in every request does not dodge the lockout either.
    dodges = [
        attacker.post(
            "/v1/leads", json=LEAD, headers={**BAD_KEY, "X-Forwarded-For": f"127.0.1.{n}"}
        ).status_code
        for n in range(3)
    ]
    assert dodges == [429, 429, 429]


def test_behind_a_trusted_proxy_the_rightmost_untrusted_hop_is_the_client(
    clients_with: Callable[..., ClientFor],
) -> None:
    proxy = clients_with(leadline_limit_auth_failures=FIVE, leadline_trusted_proxies=f"{PROXY}/32")(
        PROXY
    )

    def from_client(address: str, spoofed: str = "") -> int:
        chain = f"{spoofed}, {address}" if spoofed else address
        return bad_keys(proxy, 1, **{"X-Forwarded-For": chain})[0]

    # The attacker's own hop, appended by the proxy, is what counts; what it wrote is not.
    assert [from_client(ATTACKER, spoofed=f"127.0.1.{n}") for n in range(5)] == [401] * 5
    assert from_client(ATTACKER, spoofed="127.0.1.99") == 429
    # Other clients behind the same proxy are not locked out, and neither is the proxy's
    # own address for requests that name no client.
    assert from_client(VICTIM) == 401
    assert bad_keys(proxy, 1) == [401]
    # Claiming to be the victim from behind the proxy does not lock the victim out.
    for _ in range(6):
        from_client(ATTACKER, spoofed=VICTIM)
    assert from_client(VICTIM) == 401
