"""Instagram, Messenger and WhatsApp connected by OAuth against the provider sandbox: the
flow end to end, every attack on `state` refused with nothing stored, listing, revocation
at the provider, and a token the provider rejects marking its connection expired."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy import func, select
from starlette.testclient import TestClient

from leadline.jsondata import JsonObject
from leadline.sandbox import SandboxServer, SandboxState
from models.connections import Connection, OAuthState, connection_token
from models.routing import MetaAccount
from tasks.context import TaskContext
from tasks.oauth_state import StateClaims, sign_state, state_key
from tests.api.tenants import Tenant
from tests.support.connections import CALLBACK, authorize, connect, consent

pytestmark = pytest.mark.integration


def stored(context: TaskContext, tenant: Tenant) -> tuple[int, int]:
    """(connections, routed Meta accounts) of the tenant."""
    with context.db.tenant(tenant.id) as session:
        connections = session.scalar(select(func.count()).select_from(Connection))
        accounts = session.scalar(select(func.count()).select_from(MetaAccount))
    return int(connections or 0), int(accounts or 0)


def callback(client: TestClient, code: str, state: str) -> httpx.Response:
    return client.get(CALLBACK, params={"code": code, "state": state})


def test_the_flow_connects_every_account_the_grant_serves(
    client: TestClient,
    context: TaskContext,
    make_tenant: Callable[[], Tenant],
    sandbox_state: SandboxState,
    provider_sandbox: SandboxServer,
) -> None:
    tenant = make_tenant()
    started = authorize(client, tenant)
    dialog = urlsplit(started["url"])
    query = parse_qs(dialog.query)
    assert f"{dialog.scheme}://{dialog.netloc}{dialog.path}" == (
        f"{provider_sandbox.url}/dialog/oauth"
    )
    assert query["client_id"] == [context.settings.meta_app_id]
    assert query["redirect_uri"] == [context.settings.leadline_public_url + CALLBACK]
    assert "whatsapp_business_messaging" in query["scope"][0].split(",")
    assert query["state"] == [started["state"]] and query["response_type"] == ["code"]

    code, state = consent(started["url"])
    answer = callback(client, code, state)

    assert answer.status_code == 200
    assets = sandbox_state.graph.assets
    connected = {(c["kind"], c["account_id"]) for c in answer.json()["connected"]}
    assert connected == {
        ("messenger", assets.page_id),
        ("instagram", assets.instagram_id),
        ("whatsapp", assets.phone_number_id),
    }
    listed = client.get("/v1/connections", headers=tenant.auth("admin")).json()["data"]
    assert {(c["kind"], c["status"]) for c in listed} == {
        ("messenger", "active"),
        ("instagram", "active"),
        ("whatsapp", "active"),
    }
    assert all("token" not in key for c in listed for key in c)
    with context.db.tenant(tenant.id) as session:
        cipher = context.keys.cipher(session, tenant.id)
        rows = session.scalars(select(Connection)).all()
        tokens = {row.kind: connection_token(cipher, row) for row in rows}
        routed = set(session.scalars(select(MetaAccount.account_id)))
    # Each token is the one the sandbox gave for that account, stored only as ciphertext.
    page_token = sandbox_state.graph.token(tokens["messenger"])
    user_token = sandbox_state.graph.token(tokens["whatsapp"])
    assert page_token is not None and page_token.page_id == assets.page_id
    assert user_token is not None and user_token.page_id is None
    for row in rows:
        token = tokens[row.kind]
        assert token and row.token_ct and token.encode() not in row.token_ct
    assert routed == {assets.page_id, assets.instagram_id, assets.phone_number_id}


def test_connections_need_an_admin(client: TestClient, make_tenant: Callable[[], Tenant]) -> None:
    tenant = make_tenant()
    for path in ("/v1/connections/meta/authorize", "/v1/connections"):
        refused = client.get(path, headers=tenant.auth("member"))
        assert (refused.status_code, refused.json()["required_role"]) == (403, "admin")


def forge(context: TaskContext, claims: StateClaims) -> str:
    """A state signed with the server's own key: what only the server can make."""
    return sign_state(state_key(context.settings), claims)


def claims_of(state: str) -> JsonObject:
    encoded = state.split(".")[0]
    return dict(json.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))))


def altered(state: str, **changes: object) -> str:
    body = {**claims_of(state), **changes}
    encoded = base64.urlsafe_b64encode(json.dumps(body).encode()).rstrip(b"=").decode()
    return f"{encoded}.{state.split('.')[1]}"


@pytest.mark.parametrize(
    "attack",
    [
        "forged_signature",
        "altered_org",
        "altered_principal",
        "altered_expiry",
        "unsigned",
        "replayed",
        "expired",
        "other_org",
        "other_principal",
    ],
)
def test_each_state_attack_is_403_and_stores_nothing(
    attack: str,
    client: TestClient,
    context: TaskContext,
    make_tenant: Callable[[], Tenant],
    sandbox_state: SandboxState,
) -> None:
    victim, attacker = make_tenant(), make_tenant()
    started = authorize(client, victim)
    code, state = consent(started["url"])
    claims = claims_of(state)
    now = context.clock()
    if attack == "replayed":
        assert callback(client, code, state).status_code == 200
        code, _ = consent(authorize(client, victim)["url"])  # a fresh code, the spent state
        before = stored(context, victim)
    else:
        before = (0, 0)
    tampered = {
        "forged_signature": lambda: state.split(".")[0] + "." + "A" * 43,
        "altered_org": lambda: altered(state, org=str(attacker.id)),
        "altered_principal": lambda: altered(state, sub=f"key:{attacker.prefixes['admin']}"),
        "altered_expiry": lambda: altered(state, exp=claims["exp"] + 3600),
        "unsigned": lambda: state.split(".")[0],
        "replayed": lambda: state,
        # Signed by the server but past its ten minutes (the nonce row still exists).
        "expired": lambda: forge(
            context,
            StateClaims(victim.id, claims["sub"], claims["nonce"], now - timedelta(seconds=1)),
        ),
        # Validly signed for another org, or another principal, with the victim's nonce:
        # the nonce is bound to org and principal where it was recorded.
        "other_org": lambda: forge(
            context,
            StateClaims(attacker.id, claims["sub"], claims["nonce"], now + timedelta(minutes=5)),
        ),
        "other_principal": lambda: forge(
            context,
            StateClaims(
                victim.id,
                f"key:{victim.prefixes['owner']}",
                claims["nonce"],
                now + timedelta(minutes=5),
            ),
        ),
    }[attack]()

    refused = callback(client, code, tampered)

    assert (refused.status_code, refused.json()) == (403, {"error": "invalid_state"})
    assert stored(context, victim) == before
    assert stored(context, attacker) == (0, 0)


def test_a_refused_state_leaves_the_real_one_usable_once(
    client: TestClient,
    context: TaskContext,
    make_tenant: Callable[[], Tenant],
    sandbox_state: SandboxState,
) -> None:
    """An attacker's failed attempt (another principal) does not spend the victim's nonce."""
    tenant = make_tenant()
    code, state = consent(authorize(client, tenant)["url"])
    claims = claims_of(state)
    misbound = StateClaims(
        tenant.id,
        f"key:{tenant.prefixes['owner']}",
        claims["nonce"],
        context.clock() + timedelta(minutes=5),
    )
    assert callback(client, code, forge(context, misbound)).status_code == 403
    assert callback(client, code, state).status_code == 200
    with context.db.tenant(tenant.id) as session:
        assert session.scalar(select(func.count()).select_from(OAuthState)) == 0


def test_state_is_valid_ten_minutes(
    client: TestClient,
    context: TaskContext,
    make_tenant: Callable[[], Tenant],
    sandbox_state: SandboxState,
) -> None:
    tenant = make_tenant()
    started = authorize(client, tenant)
    issued_for = claims_of(started["state"])["exp"] - context.clock().timestamp()
    assert 590 <= issued_for <= 600
    with context.db.tenant(tenant.id) as session:
        row = session.scalars(select(OAuthState)).one()
        assert row.principal == f"key:{tenant.prefixes['admin']}"
        assert claims_of(started["state"])["nonce"].encode() not in row.nonce_hash


def test_revocation_calls_the_provider_and_deletes_the_tokens(
    client: TestClient,
    context: TaskContext,
    make_tenant: Callable[[], Tenant],
    sandbox_state: SandboxState,
) -> None:
    tenant = make_tenant()
    ids = connect(client, tenant)

    answer = client.delete(f"/v1/connections/{ids['whatsapp']}", headers=tenant.auth("admin"))

    assert answer.status_code == 200
    assert set(answer.json()["revoked"]) == set(ids.values())  # Meta revokes the whole grant
    assert [r["user_id"] for r in sandbox_state.graph.revocations()] == [
        sandbox_state.graph.assets.user_id
    ]
    with context.db.tenant(tenant.id) as session:
        rows = session.scalars(select(Connection)).all()
        assert {(row.status, row.token_ct) for row in rows} == {("revoked", None)}
    listed = client.get("/v1/connections", headers=tenant.auth("admin")).json()["data"]
    assert {c["status"] for c in listed} == {"revoked"}


def test_revoking_another_orgs_connection_is_404_and_calls_nobody(
    client: TestClient, make_tenant: Callable[[], Tenant], sandbox_state: SandboxState
) -> None:
    owner, other = make_tenant(), make_tenant()
    ids = connect(client, owner)
    refused = client.delete(f"/v1/connections/{ids['messenger']}", headers=other.auth("admin"))
    assert refused.status_code == 404
    assert sandbox_state.graph.revocations() == []
    missing = client.delete(f"/v1/connections/{uuid.uuid4()}", headers=owner.auth("admin"))
    assert missing.status_code == 404


def test_a_key_revoked_before_the_callback_cannot_complete_it(
    client: TestClient,
    context: TaskContext,
    make_tenant: Callable[[], Tenant],
    sandbox_state: SandboxState,
) -> None:
    from models.orgs import revoke_api_key

    tenant = make_tenant()
    code, state = consent(authorize(client, tenant)["url"])
    with context.db.tenant(tenant.id) as session:
        revoke_api_key(session, tenant.prefixes["admin"], context.clock(), actor="test")
    assert callback(client, code, state).status_code == 403
    assert stored(context, tenant) == (0, 0)


def test_states_never_used_are_purged_once_expired(
    client: TestClient,
    context: TaskContext,
    make_tenant: Callable[[], Tenant],
    sandbox_state: SandboxState,
) -> None:
    from tasks.connections import purge_oauth_states

    tenant = make_tenant()
    authorize(client, tenant)
    purge_oauth_states(context, context.clock())
    with context.db.tenant(tenant.id) as session:
        assert session.scalar(select(func.count()).select_from(OAuthState)) == 1
    purge_oauth_states(context, context.clock() + timedelta(minutes=11))
    with context.db.tenant(tenant.id) as session:
        assert session.scalar(select(func.count()).select_from(OAuthState)) == 0


def test_two_callbacks_racing_with_one_state_consume_it_once(
    context: TaskContext, make_tenant: Callable[[], Tenant]
) -> None:
    """The nonce is deleted by one transaction: of two holding it at once, one gets it."""
    import threading

    from models.connections import consume_oauth_state, record_oauth_state

    tenant = make_tenant()
    now, principal, nonce = context.clock(), "key:ll_racing", uuid.uuid4().hex
    with context.db.tenant(tenant.id) as session:
        record_oauth_state(session, tenant.id, nonce, principal, now + timedelta(minutes=10))
    barrier, results = threading.Barrier(2), []

    def consume() -> None:
        with context.db.tenant(tenant.id) as session:
            barrier.wait()
            results.append(consume_oauth_state(session, nonce, principal, now))

    threads = [threading.Thread(target=consume) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False, True]


def test_every_page_of_a_long_list_is_connected(
    client: TestClient,
    context: TaskContext,
    make_tenant: Callable[[], Tenant],
    sandbox_state: SandboxState,
) -> None:
    """Meta pages /me/accounts; the client follows the cursors (never the `next` URL, which
    carries the token) until the last page."""
    sandbox_state.graph.page_size = 1
    more = [sandbox_state.graph.add_page(), sandbox_state.graph.add_page()]
    tenant = make_tenant()
    code, state = consent(authorize(client, tenant)["url"])
    answer = callback(client, code, state)
    assert answer.status_code == 200
    connected = {(c["kind"], c["account_id"]) for c in answer.json()["connected"]}
    pages = [sandbox_state.graph.assets.pages[0], *more]
    assert connected == {
        *(
            (kind, account)
            for p in pages
            for kind, account in (("messenger", p.page_id), ("instagram", p.instagram_id))
        ),
        ("whatsapp", sandbox_state.graph.assets.phone_number_id),
    }
