"""Replies on Instagram, Messenger and WhatsApp through the Graph API with the stored token:
each visible in the sandbox with its channel; WhatsApp's 24-hour window (409
`template_required`); opt-outs said on a channel; a rejected token expiring the connection;
and the tokens never in clear in pg_dump, Redis or the logs."""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dramatiq
import httpx
import pytest
import redis
from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from starlette.testclient import TestClient

from leadline.sandbox import SandboxState
from leadline.settings import Settings
from models.connections import Connection
from models.messaging import OutboundMessage, Suppression
from models.tables import Lead
from tasks.attention import ATTENTION_LISTS
from tasks.context import TaskContext
from tests.api.tenants import Tenant
from tests.helpers import wait_for
from tests.support.connections import (
    connect,
    messaging_body,
    post_meta,
    whatsapp_message_body,
)

pytestmark = pytest.mark.integration
DAY = 86_400


def lead_from(context: TaskContext, tenant: Tenant, source: str) -> uuid.UUID:
    def find() -> uuid.UUID | None:
        with context.db.tenant(tenant.id) as session:
            return session.scalar(select(Lead.id).where(Lead.source == source))

    return wait_for(find)


def write_in(
    client: TestClient,
    context: TaskContext,
    tenant: Tenant,
    sandbox: SandboxState,
    channel: str,
    text: str = "Do you do gutters?",
    sent_at: float | None = None,
) -> uuid.UUID:
    """A person writes to the tenant's connected account; returns the lead it became."""
    assets, mid = sandbox.graph.assets, uuid.uuid4().hex
    if channel == "whatsapp":
        at = time.time() if sent_at is None else sent_at
        body = whatsapp_message_body(
            assets.waba_id, assets.phone_number_id, "15551230000", mid, text, at
        )
    else:
        kind, account = (
            ("page", assets.page_id)
            if channel == "messenger"
            else ("instagram", assets.instagram_id)
        )
        body = messaging_body(kind, account, f"{channel}-user-1", mid, text)
    post_meta(client, body)
    return lead_from(context, tenant, channel)


def reply(
    client: TestClient, tenant: Tenant, lead_id: uuid.UUID, channel: str, body: str
) -> httpx.Response:
    return client.post(
        f"/v1/leads/{lead_id}/messages",
        json={"body": body, "channel": channel},
        headers=tenant.auth("member"),
    )


def outbound_count(context: TaskContext, tenant: Tenant) -> int:
    with context.db.tenant(tenant.id) as session:
        return int(session.scalar(select(func.count()).select_from(OutboundMessage)) or 0)


@pytest.mark.parametrize("channel", ["messenger", "instagram", "whatsapp"])
def test_a_reply_goes_out_on_the_channel_the_lead_wrote_on(
    channel: str,
    client: TestClient,
    context: TaskContext,
    make_tenant: Callable[[], Tenant],
    sandbox_state: SandboxState,
    worker: dramatiq.Worker,
) -> None:
    tenant = make_tenant()
    connect(client, tenant)
    lead_id = write_in(client, context, tenant, sandbox_state, channel)

    answer = reply(client, tenant, lead_id, channel, f"Yes, on {channel}!")

    assert answer.status_code == 202, answer.text
    [sent] = wait_for(lambda: [m for m in sandbox_state.sent() if m["channel"] == channel])
    assets = sandbox_state.graph.assets
    sender = {
        "messenger": assets.page_id,
        "instagram": assets.instagram_id,
        "whatsapp": assets.phone_number_id,
    }[channel]
    expected_to = "15551230000" if channel == "whatsapp" else f"{channel}-user-1"
    assert (sent["to"], sent["from"], sent["body"]) == (expected_to, sender, f"Yes, on {channel}!")
    assert [m for m in sandbox_state.sent() if m["channel"] == "sms"] == []

    def state() -> str | None:
        with context.db.tenant(tenant.id) as session:
            row = session.get(OutboundMessage, answer.json()["id"])
            return row.state if row and row.state == "sent" else None

    assert wait_for(state) == "sent"
    conversation = client.get(f"/v1/leads/{lead_id}/messages", headers=tenant.auth("member"))
    assert [(m["direction"], m["channel"], m["body"]) for m in conversation.json()["data"]] == [
        ("inbound", channel, "Do you do gutters?"),
        ("outbound", channel, f"Yes, on {channel}!"),
    ]


def test_whatsapp_outside_the_24_hour_window_is_409_template_required(
    client: TestClient,
    context: TaskContext,
    make_tenant: Callable[[], Tenant],
    sandbox_state: SandboxState,
    worker: dramatiq.Worker,
) -> None:
    tenant = make_tenant()
    connect(client, tenant)
    lead_id = write_in(
        client, context, tenant, sandbox_state, "whatsapp", sent_at=time.time() - DAY - 60
    )

    refused = reply(client, tenant, lead_id, "whatsapp", "Still there?")

    assert (refused.status_code, refused.json()["error"]) == (409, "template_required")
    assert outbound_count(context, tenant) == 0
    # A new message from the customer opens the window again.
    write_in(client, context, tenant, sandbox_state, "whatsapp", text="Yes I am")

    def reopened() -> httpx.Response | None:
        answer = reply(client, tenant, lead_id, "whatsapp", "Great")
        return answer if answer.status_code == 202 else None

    wait_for(reopened)
    wait_for(lambda: [m for m in sandbox_state.sent() if m["channel"] == "whatsapp"])


def test_stop_on_a_channel_blocks_replies_there(
    client: TestClient,
    context: TaskContext,
    make_tenant: Callable[[], Tenant],
    sandbox_state: SandboxState,
    worker: dramatiq.Worker,
) -> None:
    tenant = make_tenant()
    connect(client, tenant)
    lead_id = write_in(client, context, tenant, sandbox_state, "messenger")
    write_in(client, context, tenant, sandbox_state, "messenger", text="STOP")

    def suppressed() -> bool:
        with context.db.tenant(tenant.id) as session:
            return bool(session.scalar(select(func.count()).select_from(Suppression)))

    wait_for(suppressed)
    refused = reply(client, tenant, lead_id, "messenger", "Are you sure?")
    assert (refused.status_code, refused.json()["error"]) == (409, "opted_out")
    assert outbound_count(context, tenant) == 0
    assert sandbox_state.sent() == []


def test_a_stop_that_lands_while_the_reply_waits_blocks_it_at_claim_time(
    client: TestClient,
    context: TaskContext,
    make_tenant: Callable[[], Tenant],
    sandbox_state: SandboxState,
) -> None:
    """No worker runs while the STOP is recorded, so the queued reply meets it at claim."""
    from tasks.context import get_context
    from tasks.sending import deliver_outbound

    tenant = make_tenant()
    connect(client, tenant)
    lead_id = seed_social_lead(context, tenant, sandbox_state, "instagram")
    queued = reply(client, tenant, lead_id, "instagram", "Hello")
    assert queued.status_code == 202
    with context.db.tenant(tenant.id) as session:
        lead = session.get(Lead, lead_id)
        assert lead is not None and lead.platform_bidx is not None
        session.add(
            Suppression(org_id=tenant.id, recipient_bidx=lead.platform_bidx, reason="keyword")
        )

    state = deliver_outbound(get_context(), tenant.id, uuid.UUID(queued.json()["id"]))

    assert state == "blocked"
    assert sandbox_state.sent() == []


def seed_social_lead(
    context: TaskContext, tenant: Tenant, sandbox: SandboxState, channel: str
) -> uuid.UUID:
    """A lead who wrote on `channel` just now, stored as the worker would store it."""
    from models.leads import LeadFields, upsert_lead

    account = {
        "messenger": sandbox.graph.assets.page_id,
        "instagram": sandbox.graph.assets.instagram_id,
        "whatsapp": sandbox.graph.assets.phone_number_id,
    }[channel]
    fields = LeadFields(
        message="hi",
        platform_user=f"{channel}:{channel}-user-2",
        platform_account=account,
        platform_inbound_at=context.clock(),
        source=channel,
    )
    with context.db.tenant(tenant.id) as session:
        return upsert_lead(session, context.keys.cipher(session, tenant.id), fields).lead.id


def test_a_rejected_token_expires_the_connection_for_operators(
    client: TestClient,
    context: TaskContext,
    make_tenant: Callable[[], Tenant],
    sandbox_state: SandboxState,
    worker: dramatiq.Worker,
) -> None:
    tenant = make_tenant()
    ids = connect(client, tenant)
    lead_id = seed_social_lead(context, tenant, sandbox_state, "messenger")
    sandbox_state.graph.revoke(sandbox_state.graph.assets.user_id)  # removed at Facebook

    answer = reply(client, tenant, lead_id, "messenger", "Hello?")
    assert answer.status_code == 202

    def expired() -> str | None:
        with context.db.tenant(tenant.id) as session:
            row = session.get(Connection, uuid.UUID(ids["messenger"]))
            return row.status if row is not None and row.status != "active" else None

    assert wait_for(expired) == "expired"
    with context.db.tenant(tenant.id) as session:
        message = session.get(OutboundMessage, uuid.UUID(answer.json()["id"]))
        assert message is not None and (message.state, message.last_error_code) == ("failed", "190")
    with context.db.maintenance() as session:
        listed = ATTENTION_LISTS["expired_connections"](session)
    assert [(r["id"], r["kind"], r["error"]) for r in listed if r["org_id"] == str(tenant.id)] == [
        (ids["messenger"], "messenger", "190")
    ]
    assert sandbox_state.sent() == []
    # Until it is reconnected, nothing more is queued on it.
    refused = reply(client, tenant, lead_id, "messenger", "Hello again?")
    assert (refused.status_code, refused.json()["error"]) == (409, "not_connected")


def test_a_lead_without_that_conversation_is_409(
    client: TestClient,
    context: TaskContext,
    make_tenant: Callable[[], Tenant],
    sandbox_state: SandboxState,
) -> None:
    tenant = make_tenant()
    lead_id = seed_social_lead(context, tenant, sandbox_state, "whatsapp")
    unconnected = reply(client, tenant, lead_id, "whatsapp", "Hi")
    assert (unconnected.status_code, unconnected.json()["error"]) == (409, "not_connected")
    other_channel = reply(client, tenant, lead_id, "instagram", "Hi")
    assert (other_channel.status_code, other_channel.json()["error"]) == (409, "no_conversation")
    assert outbound_count(context, tenant) == 0


def pg_dump(database_url: str) -> str:
    from pgserver._commands import POSTGRES_BIN_PATH

    url = make_url(database_url)
    args = [str(Path(POSTGRES_BIN_PATH) / "pg_dump"), "--no-owner", "-d", url.database or ""]
    if url.host:
        args += ["-h", url.host, "-p", str(url.port or 5432)]
    elif url.query.get("host"):
        args += ["-h", str(url.query["host"])]
    args += ["-U", url.username or "postgres"]
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout


def test_tokens_are_never_in_clear_in_the_database_redis_or_logs(
    client: TestClient,
    context: TaskContext,
    settings: Settings,
    make_tenant: Callable[[], Tenant],
    sandbox_state: SandboxState,
    worker: dramatiq.Worker,
    log_lines: Callable[[], list[dict[str, Any]]],
) -> None:
    tenant = make_tenant()
    ids = connect(client, tenant)
    lead_id = write_in(client, context, tenant, sandbox_state, "whatsapp")
    assert reply(client, tenant, lead_id, "whatsapp", "On our way").status_code == 202
    wait_for(lambda: [m for m in sandbox_state.sent() if m["channel"] == "whatsapp"])
    tokens = sandbox_state.graph.issued_tokens()
    assert len(tokens) >= 3 and len(ids) == 3

    dump = pg_dump(settings.leadline_database_url)
    assert "connections" in dump
    r = redis.Redis.from_url(settings.leadline_redis_url)
    in_redis = b"".join(
        key + (r.dump(key) or b"")
        for key in r.scan_iter(match=f"{settings.leadline_redis_namespace}*")
    )
    logged = repr(log_lines())
    assert "oauth/meta/callback" in logged  # the capture saw the flow
    for token in tokens:
        assert token not in dump
        assert token.encode() not in in_redis
        assert token not in logged


def test_tokens_are_not_in_exports_nor_in_backups_even_once_opened(
    client: TestClient,
    context: TaskContext,
    make_tenant: Callable[[], Tenant],
    sandbox_state: SandboxState,
) -> None:
    from tasks.backups import backup_keys, create_backup, open_bundle
    from tasks.export import export_org

    tenant = make_tenant()
    connect(client, tenant)
    tokens = sandbox_state.graph.issued_tokens()
    exported = export_org(context, tenant.id, "json", actor="test").content
    backup = create_backup(context, tenant.id, context.clock(), actor="test", escrow=False)
    records = list(open_bundle(context, backup_keys(tenant.id, backup.id).manifest))
    bundled = [r for r in records if r.get("table") == "connections"]
    assert len(bundled) == 3  # the connections are backed up, their tokens as ciphertext
    opened = repr(records).encode()
    with context.backups.reader(backup.path) as raw:
        stored = raw.read()
    for token in tokens:
        assert token.encode() not in exported
        assert token.encode() not in opened
        assert token.encode() not in stored
