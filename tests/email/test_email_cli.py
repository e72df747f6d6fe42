"""`leadline org settings ORG --email-from` and `leadline alerts add-email`, run as operators do."""

from __future__ import annotations

import json

import dramatiq
import pytest
from sqlalchemy import select

from leadline.sandbox import SandboxServer
from leadline.settings import Settings
from models.tables import AuditEntry
from tasks.context import TaskContext
from tests.support.email import distinct_emails
from tests.support.messaging import run_leadline as leadline
from tests.support.services import MakeOrg

pytestmark = pytest.mark.e2e


def test_the_sender_address_is_set_shown_and_cleared(
    make_org: MakeOrg, context: TaskContext, settings: Settings
) -> None:
    org_id = str(make_org().id)
    set_it = leadline(settings, "org", "settings", org_id, "--email-from", "News@Roofs.Example")
    assert set_it.returncode == 0, set_it.stderr
    shown = json.loads(leadline(settings, "org", "settings", org_id, "--json").stdout)
    assert shown["email_from"] == "news@roofs.example"  # as email-validator normalises it
    cleared = leadline(settings, "org", "settings", org_id, "--email-from", "none", "--json")
    assert json.loads(cleared.stdout)["email_from"] is None

    with context.db.maintenance() as session:
        details = session.scalars(
            select(AuditEntry.details)
            .where(AuditEntry.action == "org.settings_changed", AuditEntry.org_id == org_id)
            .order_by(AuditEntry.created_at)
        ).all()
    assert details == [{"email_from": "set"}, {"email_from": "cleared"}]


def test_a_bad_sender_address_is_one_line_and_changes_nothing(
    make_org: MakeOrg, settings: Settings
) -> None:
    org_id = str(make_org().id)
    for bad in ("not-an-address", "a@", "two@@example.com"):
        result = leadline(
            settings, "org", "settings", org_id, "--default-region", "US", "--email-from", bad
        )
        assert result.returncode == 1, (bad, result.stderr)
        assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
        assert "Traceback" not in result.stderr
    shown = json.loads(leadline(settings, "org", "settings", org_id, "--json").stdout)
    assert (shown["default_region"], shown["email_from"]) == (None, None)


def test_alert_emails_are_added_listed_masked_and_removed(
    make_org: MakeOrg, settings: Settings
) -> None:
    org_id = str(make_org().id)
    (address,) = distinct_emails(1)
    added = leadline(settings, "alerts", "add-email", org_id, address, "--json")
    assert added.returncode == 0, added.stderr
    listed = leadline(settings, "alerts", "list", org_id, "--json")
    (shown,) = json.loads(listed.stdout)["emails"]
    assert shown != address and address not in listed.stdout
    assert leadline(settings, "alerts", "remove-email", org_id, address).returncode == 0
    again = leadline(settings, "alerts", "remove-email", org_id, address)
    assert again.returncode == 1 and again.stderr.startswith("error: ")
    bad = leadline(settings, "alerts", "add-email", org_id, "nobody")
    assert bad.returncode == 1 and bad.stderr.count("\n") == 1


def test_an_email_campaign_is_launched_shown_and_listed_from_the_cli(
    make_org: MakeOrg,
    context: TaskContext,
    settings: Settings,
    worker: dramatiq.Worker,
    provider_sandbox: SandboxServer,
) -> None:
    from tests.helpers import wait_for
    from tests.support.email import make_email_leads, sandbox_emails, set_email_from
    from tests.support.messaging import messages_settled

    org = make_org()
    org_id = str(org.id)
    args = ["campaign", "launch", org_id, "--name", "Spring", "--template", "Hi {name}"]
    refused = leadline(settings, *args, "--channel", "email")
    assert refused.returncode == 1 and "From address" in refused.stderr
    assert leadline(settings, *args, "--channel", "fax").returncode == 1

    set_email_from(context, org.id)
    (address,) = distinct_emails(1)
    make_email_leads(context, org.id, [address])
    launched = leadline(settings, *args, "--channel", "email", "--idempotency-key", "k1", "--json")
    assert launched.returncode == 0, launched.stderr
    campaign = json.loads(launched.stdout)
    assert campaign["channel"] == "email" and campaign["replayed"] is False
    again = leadline(settings, *args, "--channel", "email", "--idempotency-key", "k1", "--json")
    assert json.loads(again.stdout) == {**campaign, "replayed": True}
    wait_for(lambda: messages_settled(context, org.id, 1), timeout=30)

    assert [record["to"] for record in sandbox_emails(provider_sandbox)] == [address]
    shown = json.loads(
        leadline(settings, "campaign", "show", org_id, campaign["id"], "--json").stdout
    )
    assert shown["channel"] == "email" and shown["counts"]["sent"] == 1
    listed = json.loads(leadline(settings, "campaign", "list", org_id, "--json").stdout)
    assert [row["id"] for row in listed] == [campaign["id"]]
