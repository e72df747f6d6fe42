"""SSRF: production refuses the issue's table of targets at `endpoint add` and at delivery.

Proof that nothing is sent: loopback targets point at a bare 127.0.0.1 listener that must see
no connection; every other address would go through the recording socket factory, which must
never be called (and refuses to dial anything but loopback). DNS is a fake resolver. No test
here opens a connection outside 127.0.0.0/8 and ::1.
"""

from __future__ import annotations

import re
import socket
import uuid
from collections.abc import Iterator
from typing import Any

import dramatiq
import pytest
from sqlalchemy import select

from leadline.netguard import UnsafeTargetError
from leadline.webhook_signature import generate_secret
from models.webhook_endpoints import EndpointSpec, InvalidEndpointError, UrlPolicy, create_endpoint
from models.webhooks import WebhookEndpoint
from tasks.context import TaskContext
from tasks.webhooks.http import set_transport_overrides
from tests.helpers import wait_for
from tests.support.netguard import PUBLIC_IP, FakeResolver, RecordingSockets, assert_no_connection
from tests.support.services import MakeOrg, Org
from tests.support.webhooks import (
    add_endpoint,
    attempts,
    deliveries,
    publish_event,
    swapped_settings,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

PRODUCTION: dict[str, Any] = {
    "leadline_env": "production",
    "leadline_allow_private_webhook_targets": False,
    "leadline_webhook_retry_schedule": "600",
}
DNS = {
    "private.example.test": ["10.1.2.3"],
    "mixed.example.test": [PUBLIC_IP, "192.168.0.7"],
    "hooks.example.test": [PUBLIC_IP],
}
# (authority with {port} for the loopback listener, expected words of the refusal)
TABLE = [
    ("127.0.0.1:{port}", "loopback"),
    ("localhost:{port}", "loopback"),
    ("[::1]:{port}", "loopback"),
    ("[::ffff:127.0.0.1]:{port}", "IPv4-mapped loopback"),
    ("2130706433:{port}", "loopback"),
    ("0x7f.1:{port}", "loopback"),
    ("169.254.169.254", "cloud metadata"),
    ("[64:ff9b::a9fe:a9fe]", "cloud metadata"),
    ("100.64.0.1", "shared address space (CGNAT)"),
    ("10.0.0.1", "private"),
    ("private.example.test", "private"),
    ("mixed.example.test", "private"),
]


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    yield sock
    sock.close()


@pytest.fixture
def guarded() -> Iterator[tuple[RecordingSockets, FakeResolver]]:
    backend, resolver = RecordingSockets(), FakeResolver(dict(DNS))
    set_transport_overrides(resolver=resolver, socket_factory=backend)
    yield backend, resolver
    set_transport_overrides()


@pytest.fixture
def production(
    context: TaskContext, guarded: tuple[RecordingSockets, FakeResolver]
) -> Iterator[TaskContext]:
    with swapped_settings(context, **PRODUCTION) as swapped:
        yield swapped


def urls(listener: socket.socket, scheme: str) -> list[tuple[str, str]]:
    port = listener.getsockname()[1]
    return [(f"{scheme}://{a.format(port=port)}/hook?t=s3cret", why) for a, why in TABLE]


def endpoint_count(context: TaskContext, org_id: uuid.UUID) -> int:
    with context.db.tenant(org_id) as session:
        return len(session.scalars(select(WebhookEndpoint.id)).all())


@pytest.mark.parametrize("scheme", ["https", "http"])
def test_endpoint_add_refuses_every_target_in_production(
    production: TaskContext,
    make_org: MakeOrg,
    listener: socket.socket,
    guarded: tuple[RecordingSockets, FakeResolver],
    scheme: str,
) -> None:
    org: Org = make_org()
    policy = UrlPolicy.from_settings(production.settings)
    assert policy == UrlPolicy(allow_http=False, allow_private=False)
    for url, why in urls(listener, scheme):
        with pytest.raises(UnsafeTargetError) as refused:
            add_endpoint(production, org.id, url, resolver=guarded[1])
        expected = "plain http is not allowed" if scheme == "http" else why
        assert expected in str(refused.value)
        assert "s3cret" not in str(refused.value)
    assert endpoint_count(production, org.id) == 0
    assert guarded[0].calls == []
    assert_no_connection(listener)


def test_development_policy_still_refuses_the_address_table(
    context: TaskContext,
    make_org: MakeOrg,
    listener: socket.socket,
    guarded: tuple[RecordingSockets, FakeResolver],
) -> None:
    """Plain http is fine outside production, but private targets still need the setting."""
    org: Org = make_org()
    policy = UrlPolicy.from_settings(context.settings)
    assert policy == UrlPolicy(allow_http=True, allow_private=False)
    for url, why in urls(listener, "http"):
        with (
            context.db.tenant(org.id) as session,
            pytest.raises(UnsafeTargetError, match=re.escape(why)),
        ):
            cipher = context.keys.cipher(session, org.id)
            spec = EndpointSpec(url, ("lead.created",))
            create_endpoint(session, cipher, spec, policy, resolver=guarded[1])
    assert_no_connection(listener)


def test_endpoint_add_refuses_unknown_events_and_fields(
    context: TaskContext, make_org: MakeOrg
) -> None:
    org: Org = make_org()
    with swapped_settings(context, leadline_allow_private_webhook_targets=True) as dev:
        for events, shared, message in [
            (("lead.made",), (), "unknown event type(s): lead.made"),
            ((), (), "at least one event type"),
            (("lead.created",), ("ssn",), "unknown lead field(s): ssn"),
        ]:
            with pytest.raises(InvalidEndpointError, match=re.escape(message)):
                add_endpoint(dev, org.id, "http://127.0.0.1:9/", events, shared)
    assert endpoint_count(context, org.id) == 0


def insert_unchecked(context: TaskContext, org_id: uuid.UUID, url: str) -> None:
    """An endpoint row as an older, looser policy might have left it (no URL check)."""
    endpoint_id = uuid.uuid4()
    with context.db.tenant(org_id) as session:
        cipher = context.keys.cipher(session, org_id)
        secret = generate_secret().encode()
        session.add(
            WebhookEndpoint(
                id=endpoint_id,
                org_id=org_id,
                url=url,
                event_types=["lead.created"],
                shared_fields=[],
                secret_ct=cipher.encrypt(secret, "webhook_endpoints", "secret_ct", endpoint_id),
                enabled=True,
            )
        )


def all_attempted(context: TaskContext, org_id: uuid.UUID, count: int) -> list[Any]:
    rows = [d for d in deliveries(context, org_id) if d.attempt_count >= 1]
    return rows if len(rows) == count else []


def test_delivery_refuses_every_target_in_production(
    production: TaskContext,
    worker: dramatiq.Worker,
    make_org: MakeOrg,
    listener: socket.socket,
    guarded: tuple[RecordingSockets, FakeResolver],
) -> None:
    org: Org = make_org()
    table = urls(listener, "https") + urls(listener, "http")
    for url, _ in table:
        insert_unchecked(production, org.id, url)
    publish_event(production, org.id, "lead.created", {"lead_id": str(uuid.uuid4())})

    done = wait_for(lambda: all_attempted(production, org.id, len(table)))
    for delivery in done:
        logged = attempts(production, org.id, delivery.id)
        assert [(a.outcome, a.error_class) for a in logged] == [
            ("refused_target", "refused_target")
        ]
        assert "s3cret" not in (logged[0].error_text or "")
        assert delivery.state == "pending"  # refused targets follow the retry schedule
    reasons = sorted(d.last_error or "" for d in done)
    assert sum("plain http" in r for r in reasons) == len(TABLE)
    assert sum(r.startswith("target address is not") for r in reasons) == len(TABLE)
    assert guarded[0].calls == []
    assert_no_connection(listener)


@pytest.mark.parametrize(
    "rebound", [["127.0.0.1"], ["10.0.0.1"], ["169.254.169.254"], [PUBLIC_IP, "::1"]]
)
def test_dns_changed_after_creation_is_refused_at_delivery(
    production: TaskContext,
    worker: dramatiq.Worker,
    make_org: MakeOrg,
    listener: socket.socket,
    guarded: tuple[RecordingSockets, FakeResolver],
    rebound: list[str],
) -> None:
    org: Org = make_org()
    backend, resolver = guarded
    url = f"https://hooks.example.test:{listener.getsockname()[1]}/hook"
    add_endpoint(production, org.id, url, resolver=resolver)  # vetted: resolves to a public IP
    assert backend.calls == []

    resolver.table["hooks.example.test"] = rebound
    publish_event(production, org.id, "lead.created", {"lead_id": str(uuid.uuid4())})
    delivery = wait_for(lambda: all_attempted(production, org.id, 1))[0]

    assert delivery.last_error is not None and "target address" in delivery.last_error
    assert ("hooks.example.test", listener.getsockname()[1]) in resolver.calls
    assert backend.calls == []
    assert_no_connection(listener)
