"""`leadline campaign launch|show`: the same SMS campaign as POST /v1/campaigns, from the
command line, targeting only leads whose consent is newer than any STOP from their number."""

from __future__ import annotations

import json
import uuid
from typing import TYPE_CHECKING

import pytest

from leadline.settings import Settings
from tasks.campaigns import launch
from tests.support.messaging import distinct_phones, inbound_sms, make_leads, outbound_rows
from tests.support.messaging import run_leadline as leadline
from tests.support.services import MakeOrg

if TYPE_CHECKING:
    from tasks.context import TaskContext


pytestmark = pytest.mark.e2e

TEMPLATE = "Hi {name}, time for a roof check?"


def test_a_campaign_from_the_cli_skips_a_lead_who_said_stop(
    make_org: MakeOrg, settings: Settings, context: TaskContext
) -> None:
    org = make_org()
    consenting, stopped = distinct_phones(2)
    [lead_id, _] = make_leads(context, org.id, [consenting, stopped])
    inbound_sms(context, org.id, stopped, "STOP")

    created = leadline(
        settings, "campaign", "launch", str(org.id), "--name", "Spring",
        "--template", TEMPLATE, "--idempotency-key", "spring-cli", "--json",
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    data = json.loads(created.stdout)
    assert (data["replayed"], data["channel"]) == (False, "sms")

    assert launch(context, org.id, uuid.UUID(data["id"])) == 1  # what the worker would do
    assert [row.lead_id for row in outbound_rows(context, org.id)] == [lead_id]
    shown = leadline(settings, "campaign", "show", str(org.id), data["id"], "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["counts"]["targeted"] == 1

    again = leadline(
        settings, "campaign", "launch", str(org.id), "--name", "Spring",
        "--template", TEMPLATE, "--idempotency-key", "spring-cli", "--json",
    )  # fmt: skip
    assert json.loads(again.stdout) == {**data, "replayed": True}
