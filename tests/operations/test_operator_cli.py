"""Operator commands: see and undo what was created, each audited, each refusing clearly.

In-process (typer's CliRunner) against the test database; stdout must stay one JSON document
with `--json` whatever progress is shown on stderr.
"""

from __future__ import annotations

import json
import random
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import update
from typer.testing import CliRunner

from leadline.cli import app
from models.audit import AuditQuery, list_audit
from models.messaging import OutboundMessage
from models.routing import org_for_meta_account, org_for_number
from models.tables import Organization
from tests.support.messaging import queue_alerts
from tests.support.retention import add_lead
from tests.support.services import MakeOrg
from tests.support.webhooks import DEV_WEBHOOKS, add_endpoint, publish_event, swapped_settings

if TYPE_CHECKING:
    from tasks.context import TaskContext

pytestmark = pytest.mark.e2e


def run(*args: str, ok: bool = True, stdin: str | None = None) -> Any:
    result = CliRunner().invoke(app, list(args), input=stdin, catch_exceptions=False)
    assert (result.exit_code == 0) is ok, (result.exit_code, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    return result


def data(*args: str) -> Any:
    return json.loads(run(*args, "--json").stdout)


def refusal(*args: str) -> str:
    """The one error line of a refused command (exit 1)."""
    result = run(*args, ok=False)
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return str(lines[0])


def audited(context: TaskContext, org_id: uuid.UUID, action: str) -> list[Any]:
    with context.db.maintenance() as session:
        return list_audit(session, AuditQuery(org_id=org_id, action=action))


def business_number() -> str:
    return f"+1212{random.randint(2_000_000, 9_999_999)}"


def test_org_list_show_and_apikey_list_show_no_secrets(
    context: TaskContext, make_org: MakeOrg
) -> None:
    org = make_org("Acme Roofing")
    add_lead(context, org.id, name="Ada Lovelace", phone="+14155550123")
    spare = data("apikey", "create", str(org.id))
    data("apikey", "revoke", spare["prefix"])
    data("number", "add", str(org.id), business_number())

    listed = {row["id"]: row for row in data("org", "list")}
    assert listed[str(org.id)]["name"] == "Acme Roofing"
    assert listed[str(org.id)]["status"] == "active"

    shown = run("org", "show", str(org.id), "--json").stdout
    assert "Ada" not in shown and "4155550123" not in shown
    details = json.loads(shown)
    assert details["counts"]["leads"] == 1
    assert details["counts"]["api_keys_active"] == 1
    assert details["counts"]["numbers"] == 1
    assert details["settings"]["program"] == "Acme Roofing"

    keys_text = run("apikey", "list", str(org.id), "--json").stdout
    assert spare["key"] not in keys_text and "hash" not in keys_text
    keys = {row["prefix"]: row for row in json.loads(keys_text)}
    assert len(keys) == 2
    assert keys[spare["prefix"]]["revoked_at"] is not None
    assert [k for k in keys.values() if k["revoked_at"] is None]
    assert spare["prefix"] in run("apikey", "list", str(org.id)).stdout


def test_number_remove_stops_routing_and_is_audited(
    context: TaskContext, make_org: MakeOrg
) -> None:
    org, other = make_org(), make_org()
    number = business_number()
    data("number", "add", str(org.id), number)

    refused = refusal("number", "remove", str(other.id), number)
    assert "no such number" in refused
    removed = data("number", "remove", str(org.id), number)
    assert removed == {"org_id": str(org.id), "number": number, "removed": True}
    with context.db.maintenance() as session:
        assert org_for_number(session, number) is None
    assert [entry.target for entry in audited(context, org.id, "number.removed")] == [number]
    assert "no such number" in refusal("number", "remove", str(org.id), number)


def test_meta_unlink_only_unlinks_the_orgs_own_account(
    context: TaskContext, make_org: MakeOrg
) -> None:
    org, other = make_org(), make_org()
    account = f"page-{uuid.uuid4().hex[:12]}"
    data("meta", "link", str(org.id), account)

    assert "no such Meta account" in refusal("meta", "unlink", str(other.id), account)
    with context.db.maintenance() as session:
        assert org_for_meta_account(session, [account]) == org.id

    data("meta", "unlink", str(org.id), account)
    with context.db.maintenance() as session:
        assert org_for_meta_account(session, [account]) is None
    assert len(audited(context, org.id, "meta.account_removed")) == 1


def test_endpoint_delete_removes_it_with_its_deliveries(
    context: TaskContext, make_org: MakeOrg
) -> None:
    org = make_org()
    with swapped_settings(context, **DEV_WEBHOOKS) as dev:
        endpoint_id, _ = add_endpoint(dev, org.id, "http://127.0.0.1:9/hook")
    publish_event(context, org.id, "lead.created", {"lead_id": str(uuid.uuid4())})

    deleted = data("endpoint", "delete", str(endpoint_id))
    assert deleted == {"id": str(endpoint_id), "deleted": True, "deliveries_deleted": 1}
    assert data("endpoint", "list", str(org.id)) == []
    entries = audited(context, org.id, "endpoint.deleted")
    assert [(e.target, e.details) for e in entries] == [
        (str(endpoint_id), {"deliveries_deleted": 1})
    ]
    assert "webhook endpoint not found" in refusal("endpoint", "delete", str(endpoint_id))


def set_state(context: TaskContext, org_id: uuid.UUID, message_id: uuid.UUID, state: str) -> None:
    """As reconciliation leaves a message it could not decide (listed for operators)."""
    code = "not_at_provider" if state == "unknown" else None
    with context.db.tenant(org_id) as session:
        session.execute(
            update(OutboundMessage)
            .where(OutboundMessage.id == message_id)
            .values(state=state, last_error_code=code)
        )


def state_of(context: TaskContext, org_id: uuid.UUID, message_id: uuid.UUID) -> str:
    with context.db.tenant(org_id) as session:
        row = session.get(OutboundMessage, message_id)
        assert row is not None
        return row.state


def test_alerts_resolve_moves_only_unknown_messages(
    context: TaskContext, make_org: MakeOrg
) -> None:
    org, other = make_org(), make_org()
    first, second, queued = queue_alerts(context, org.id, "+14155550177", 3, enqueue=False)
    (elsewhere,) = queue_alerts(context, other.id, "+14155550178", 1, enqueue=False)
    for org_id, message in ((org.id, first), (org.id, second), (other.id, elsewhere)):
        set_state(context, org_id, message, "unknown")

    mine = {row["id"] for row in data("alerts", "unknown", str(org.id))}
    assert mine == {str(first), str(second)}
    assert {str(first), str(elsewhere)} <= {row["id"] for row in data("alerts", "unknown")}

    assert data("alerts", "resolve", str(first), "--as", "sent")["state"] == "sent"
    data("alerts", "resolve", str(second), "--as", "failed")
    assert state_of(context, org.id, first) == "sent"
    assert state_of(context, org.id, second) == "failed"
    entries = audited(context, org.id, "alerts.resolved")
    assert {(e.target, e.details["to"]) for e in entries} == {
        (str(first), "sent"),
        (str(second), "failed"),
    }

    assert "message is sent, not unknown" in refusal(
        "alerts", "resolve", str(first), "--as", "failed"
    )
    assert "message is queued, not unknown" in refusal(
        "alerts", "resolve", str(queued), "--as", "sent"
    )
    assert state_of(context, org.id, first) == "sent"
    assert state_of(context, org.id, queued) == "queued"
    assert len(audited(context, org.id, "alerts.resolved")) == 2
    # leave nothing for other tests' sweeps and attention lists to find
    set_state(context, org.id, queued, "failed")
    set_state(context, other.id, elsewhere, "failed")


def deletion_due(context: TaskContext, org_id: uuid.UUID) -> Any:
    with context.db.maintenance() as session:
        org = session.get(Organization, org_id)
        assert org is not None
        return org.deletion_due_at


def test_org_delete_needs_yes_off_a_terminal_and_asks_on_one(
    context: TaskContext, make_org: MakeOrg, monkeypatch: pytest.MonkeyPatch
) -> None:
    import leadline.commands.retention as retention

    org = make_org("Doomed Roofing")
    refused = refusal("org", "delete", str(org.id))
    assert "add --yes" in refused
    assert deletion_due(context, org.id) is None

    monkeypatch.setattr(retention, "is_interactive", lambda: True)
    declined = run("org", "delete", str(org.id), ok=False, stdin="n\n")
    assert declined.exit_code == 1
    assert "Doomed Roofing" in declined.stderr  # the prompt names the org
    assert declined.stderr.endswith("error: aborted (nothing was changed)\n")
    assert deletion_due(context, org.id) is None

    run("org", "delete", str(org.id), stdin="y\n")
    assert deletion_due(context, org.id) is not None


def test_org_delete_with_yes_deletes_now(context: TaskContext, make_org: MakeOrg) -> None:
    org = make_org()
    assert data("org", "delete", str(org.id), "--now", "--yes")["deleted"] is True
    with context.db.maintenance() as session:
        assert session.get(Organization, org.id) is None


def test_export_shows_progress_on_stderr_and_keeps_stdout_json(
    context: TaskContext, make_org: MakeOrg, tmp_path: Path
) -> None:
    org = make_org()
    for index in range(3):
        add_lead(context, org.id, phone=f"+1415555{index:04d}")
    out = tmp_path / "export.json"

    result = run("export", str(org.id), "--out", str(out), "--json")
    assert json.loads(result.stdout)["rows"]["leads"] == 3
    progress = result.stderr.splitlines()
    assert progress[0] == "rows exported: 0/3 (0%)"
    assert progress[-1] == "rows exported: 3/3 (100%)"
    assert "\r" not in result.stderr  # not a terminal: plain lines


def test_backup_create_shows_progress(context: TaskContext, make_org: MakeOrg) -> None:
    org = make_org()
    add_lead(context, org.id, phone="+14155550999")
    result = run("backup", "create", str(org.id), "--json")
    rows = json.loads(result.stdout)["rows"]
    assert result.stderr.splitlines()[-1] == f"rows written: {rows}/{rows} (100%)"


def test_webhook_recover_accepts_durations_and_shows_progress(
    context: TaskContext, make_org: MakeOrg
) -> None:
    org = make_org()
    with swapped_settings(context, **DEV_WEBHOOKS) as dev:
        endpoint_id, _ = add_endpoint(dev, org.id, "http://127.0.0.1:9/hook")
    for _ in range(2):
        publish_event(context, org.id, "lead.created", {"lead_id": str(uuid.uuid4())})
    from models.webhooks import WebhookDelivery

    with context.db.tenant(org.id) as session:
        session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.endpoint_id == endpoint_id)
            .values(state="failed")
        )

    result = run("webhook", "recover", str(endpoint_id), "--since", "1h", "--json")
    assert json.loads(result.stdout) == {"endpoint_id": str(endpoint_id), "requeued": 2}
    assert result.stderr.splitlines()[-1] == "enqueuing deliveries: 2/2 (100%)"
    again = run("webhook", "recover", str(endpoint_id), "--since", "1h", "--until", "30m")
    assert again.stdout.strip() == f"re-queued 0 deliveries to {endpoint_id}"
    # the re-queued deliveries must not be left pending for other tests' sweeps to find
    assert data("endpoint", "delete", str(endpoint_id))["deliveries_deleted"] == 2
