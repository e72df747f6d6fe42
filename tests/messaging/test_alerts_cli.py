"""`leadline alerts ...` as an operator runs it: JSON output, masked numbers, clear errors."""

from __future__ import annotations

import json

import pytest

from leadline.settings import Settings
from tests.support.messaging import run_leadline as leadline
from tests.support.services import MakeOrg

pytestmark = pytest.mark.e2e


def test_alert_settings_round_trip_and_clear_errors(make_org: MakeOrg, settings: Settings) -> None:
    org = str(make_org("Acme Roofing").id)

    added = leadline(settings, "alerts", "add-number", org, "+14155550188", "--json")
    assert added.returncode == 0, added.stderr
    assert "4155550188" not in added.stdout
    configured = leadline(settings, "alerts", "settings", org, "--program", "Acme", "--autoreply")
    assert configured.returncode == 0, configured.stderr

    listed = leadline(settings, "alerts", "list", org, "--json")
    data = json.loads(listed.stdout)
    assert data["numbers"] == ["+1******0188"]
    assert data["program"] == "Acme" and data["autoreply"] is True
    assert data["templates"]["help_reply"].startswith("{program}")

    bad = leadline(settings, "alerts", "template", org, "owner_alert_sms", "{name.__dict__}")
    assert bad.returncode == 1
    assert bad.stderr.strip().startswith("error: unknown placeholders")
    assert "Traceback" not in bad.stderr
