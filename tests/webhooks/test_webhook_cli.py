"""`leadline endpoint ...` and `leadline webhook ...` as an operator runs them (subprocesses)."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dramatiq
import pytest
from sqlalchemy import select

from leadline.settings import Settings
from models.tables import AuditEntry
from tests.helpers import wait_for
from tests.support.processes import child_env
from tests.support.services import MakeOrg, Org
from tests.support.webhooks import (
    DEV_WEBHOOKS,
    Captured,
    Reply,
    deliveries,
    in_state,
    publish_event,
    running_receiver,
    swapped_settings,
    verify,
)

if TYPE_CHECKING:
    from tasks.context import TaskContext

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]
LEADLINE = str(Path(sys.executable).with_name("leadline"))


def leadline(settings: Settings, *args: str, ok: bool = True, allow_private: bool = True) -> Any:
    result = subprocess.run(
        [LEADLINE, *args, "--json"],
        env=child_env(settings, LEADLINE_ALLOW_PRIVATE_WEBHOOK_TARGETS=str(allow_private).lower()),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (result.returncode == 0) is ok, result.stderr
    return json.loads(result.stdout if ok else result.stderr.strip().splitlines()[-1])


def test_operator_manages_endpoints_and_replays_deliveries(
    context: TaskContext, worker: dramatiq.Worker, make_org: MakeOrg
) -> None:
    org: Org = make_org()
    settings = {**DEV_WEBHOOKS, "leadline_webhook_retry_schedule": "0.1"}
    with swapped_settings(context, **settings) as ctx, running_receiver([Reply(500)] * 4) as rx:
        add = ("endpoint", "add", str(org.id), rx.url, "--events")
        refused = leadline(ctx.settings, *add, "lead.created", ok=False, allow_private=False)
        assert refused == {"error": "target address is not global: loopback"}

        options = ("--description", "CRM", "--share", "name")
        added = leadline(ctx.settings, *add, "lead.created,optout.changed", *options)
        endpoint_id, first_secret = added["id"], added["secret"]
        listed = leadline(ctx.settings, "endpoint", "list", str(org.id))
        assert [e["id"] for e in listed] == [endpoint_id]
        assert listed[0]["event_types"] == ["lead.created", "optout.changed"]
        assert listed[0]["shared_fields"] == ["name"] and listed[0]["description"] == "CRM"
        assert first_secret not in json.dumps(listed) and "secret" not in listed[0]

        rotated = leadline(ctx.settings, "endpoint", "rotate-secret", endpoint_id)
        assert rotated["secret"].startswith("whsec_") and rotated["secret"] != first_secret
        disabled = leadline(ctx.settings, "endpoint", "disable", endpoint_id, "--reason", "paused")
        assert disabled == {"id": endpoint_id, "enabled": False, "reason": "paused"}
        assert leadline(ctx.settings, "endpoint", "enable", endpoint_id)["enabled"] is True

        # Two events fail twice each (schedule of one retry), so both end up failed.
        publish_event(ctx, org.id, "lead.created", {"lead_id": str(uuid.uuid4())})
        publish_event(ctx, org.id, "optout.changed", {"lead_id": str(uuid.uuid4())})
        failed = wait_for(lambda: in_state(ctx, org.id, "failed", count=2))
        assert len(rx.seen()) == 4

        resent = leadline(ctx.settings, "webhook", "resend", str(failed[0].id))
        assert resent["state"] == "pending"
        wait_for(lambda: deliveries(ctx, org.id)[0].state == "delivered")
        since = failed[0].created_at.isoformat()
        recovered = leadline(ctx.settings, "webhook", "recover", endpoint_id, "--since", since)
        assert recovered == {"endpoint_id": endpoint_id, "requeued": 1}
        wait_for(lambda: all(d.state == "delivered" for d in deliveries(ctx, org.id)))
        seen: list[Captured] = rx.seen()

    assert len(seen) == 6
    assert seen[4].headers["webhook-id"] == failed[0].event_id
    for request in seen:
        verify(rotated["secret"], request)
        verify(first_secret, request)  # still inside the 24 h overlap

    logged = leadline(ctx.settings, "endpoint", "attempts", endpoint_id)
    assert [a["outcome"] for a in logged].count("delivered") == 2
    assert [a["status_code"] for a in logged].count(500) == 4
    assert all("body" not in a for a in logged)

    with context.db.tenant(org.id) as session:
        actions = set(session.scalars(select(AuditEntry.action)).all())
    assert {
        "endpoint.created",
        "endpoint.listed",
        "endpoint.secret_rotated",
        "endpoint.disabled",
        "endpoint.enabled",
        "webhook.resend",
        "webhook.recover",
        "endpoint.attempts_viewed",
    } <= actions
