"""Phone numbers: +E.164 unless the org has a default region (`leadline org settings ORG
--default-region US`), then national numbers are read in it; otherwise 422 naming `phone`."""

from __future__ import annotations

import json
import uuid
from typing import TYPE_CHECKING, Any

import dramatiq
import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from leadline.settings import Settings
from models.leads import decrypt_lead
from models.tables import AuditEntry, InboundEvent, Lead
from tests.helpers import wait_for
from tests.support.messaging import run_leadline as leadline
from tests.support.services import MakeOrg, Org

if TYPE_CHECKING:
    from tasks.context import TaskContext

pytestmark = pytest.mark.e2e

NATIONAL = "(415) 555-0123"


def post(client: TestClient, org: Org, phone: str) -> Any:
    return client.post("/v1/leads", json={"name": "Ada", "phone": phone}, headers=org.auth)


def events_of(context: TaskContext, org_id: uuid.UUID) -> list[InboundEvent]:
    with context.db.tenant(org_id) as session:
        return list(session.scalars(select(InboundEvent)))


def lead_phones(context: TaskContext, org_id: uuid.UUID) -> list[str | None]:
    with context.db.tenant(org_id) as session:
        cipher = context.keys.cipher(session, org_id)
        return [decrypt_lead(cipher, lead).phone for lead in session.scalars(select(Lead))]


def test_a_national_number_without_a_default_region_is_422_naming_phone(
    client: TestClient, make_org: MakeOrg, context: TaskContext
) -> None:
    org = make_org()
    response = post(client, org, NATIONAL)
    assert response.status_code == 422
    (error,) = response.json()["fields"]
    assert error["loc"] == ["phone"] and "E.164" in error["msg"]
    assert "555" not in response.text
    assert events_of(context, org.id) == []
    assert post(client, org, "+1 415 555 0123").status_code == 202


def test_with_a_default_region_national_numbers_are_read_in_it(
    client: TestClient,
    worker: dramatiq.Worker,
    make_org: MakeOrg,
    context: TaskContext,
    settings: Settings,
) -> None:
    us, gb = make_org("US"), make_org("GB")
    set_us = leadline(settings, "org", "settings", str(us.id), "--default-region", "US", "--json")
    assert set_us.returncode == 0, set_us.stderr
    assert json.loads(set_us.stdout) == {
        "org_id": str(us.id),
        "default_region": "US",
        "email_from": None,
        "quiet_hours": "08:00-21:00",
    }
    assert (
        leadline(settings, "org", "settings", str(gb.id), "--default-region", "gb").returncode == 0
    )

    assert post(client, us, NATIONAL).status_code == 202
    assert post(client, gb, "020 7946 0018").status_code == 202
    assert post(client, gb, "+1 415 555 0124").status_code == 202  # E.164 is always fine
    assert post(client, gb, NATIONAL).status_code == 422  # not a valid GB number

    wait_for(
        lambda: len(lead_phones(context, us.id)) == 1 and len(lead_phones(context, gb.id)) == 2
    )
    assert lead_phones(context, us.id) == ["+14155550123"]
    assert sorted(p or "" for p in lead_phones(context, gb.id)) == ["+14155550124", "+442079460018"]


def test_org_settings_round_trip_audited_and_cleared(
    client: TestClient, make_org: MakeOrg, context: TaskContext, settings: Settings
) -> None:
    org = make_org()
    org_id = str(org.id)
    assert leadline(settings, "org", "settings", org_id, "--default-region", "US").returncode == 0
    shown = leadline(settings, "org", "settings", org_id, "--json")
    assert json.loads(shown.stdout)["default_region"] == "US"
    cleared = leadline(settings, "org", "settings", org_id, "--default-region", "none", "--json")
    assert json.loads(cleared.stdout)["default_region"] is None
    assert post(client, org, NATIONAL).status_code == 422

    with context.db.tenant(org.id) as session:
        audit = session.scalars(
            select(AuditEntry.details)
            .where(AuditEntry.action == "org.settings_changed")
            .order_by(AuditEntry.created_at)
        ).all()
    assert audit == [{"default_region": "US"}, {"default_region": None}]


def test_an_invalid_region_is_refused_in_one_line(make_org: MakeOrg, settings: Settings) -> None:
    org_id = str(make_org().id)
    for bad in ("XX", "USA"):
        result = leadline(settings, "org", "settings", org_id, "--default-region", bad)
        assert result.returncode == 1, (bad, result.stderr)
        assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
        assert "Traceback" not in result.stderr
    unknown = leadline(settings, "org", "settings", str(uuid.uuid4()), "--default-region", "US")
    assert unknown.returncode == 1 and unknown.stderr.startswith("error: ")
