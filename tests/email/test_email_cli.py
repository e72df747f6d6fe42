"""`leadline org settings ORG --email-from` and `leadline alerts add-email`, run as operators do."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import select

from leadline.settings import Settings
from models.tables import AuditEntry
from tests.support.email import distinct_emails
from tests.support.messaging import run_leadline as leadline

pytestmark = pytest.mark.e2e


def test_the_sender_address_is_set_shown_and_cleared(
    make_org: Any, context: Any, settings: Settings
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
    make_org: Any, settings: Settings
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
    assert shown == {"org_id": org_id, "default_region": None, "email_from": None}


def test_alert_emails_are_added_listed_masked_and_removed(
    make_org: Any, settings: Settings
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
