"""Opt-outs recorded by the business (by phone, email, in person): stored like a STOP,
audited under the principal, listed with the matching lead and the note, and lifted only by
the person's START (there is no DELETE)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from models.tables import AuditEntry
from tests.api.seeding import add_lead
from tests.api.tenants import Tenant

if TYPE_CHECKING:
    from tasks.context import TaskContext

pytestmark = pytest.mark.integration
PHONE = "+14155550124"


def test_record_list_and_audit(
    client: TestClient, context: TaskContext, make_tenant: Callable[[], Tenant]
) -> None:
    tenant = make_tenant()
    lead_id = add_lead(context, tenant.id, name="Cy", phone=PHONE)
    body = {"phone": "+1 415 555 0124", "channel": "in_person", "note": "asked at the counter"}
    first = client.post("/v1/suppressions", json=body, headers=tenant.auth("admin"))
    again = client.post("/v1/suppressions", json=body, headers=tenant.auth("admin"))
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["reason"] == "reported_in_person"
    assert PHONE not in first.text  # the answer does not repeat the number it was given

    listed = client.get("/v1/suppressions", headers=tenant.auth("member")).json()["data"]
    assert [(s["lead_id"], s["phone"], s["note"]) for s in listed] == [
        (str(lead_id), PHONE, "asked at the counter")
    ]
    with context.db.tenant(tenant.id) as session:
        entries = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "optout.added")
        ).all()
    assert [(e.actor, e.details["reason"]) for e in entries] == [
        (f"key:{tenant.prefixes['admin']}", "reported_in_person")
    ]
    assert "counter" not in str(entries[0].details) and PHONE not in str(entries[0].target)


def test_no_route_lifts_a_suppression(
    client: TestClient, make_tenant: Callable[[], Tenant]
) -> None:
    tenant = make_tenant()
    response = client.delete("/v1/suppressions", headers=tenant.auth("owner"))
    assert response.status_code == 405
    assert response.json()["error"] == "method_not_allowed"


def test_bad_input_is_refused_without_echo(
    client: TestClient, make_tenant: Callable[[], Tenant]
) -> None:
    tenant = make_tenant()
    for body in (
        {"phone": "not-a-number-555", "channel": "phone"},
        {"phone": PHONE, "channel": "carrier-pigeon"},
        {"phone": PHONE, "channel": "phone", "note": "bad\x00note"},
    ):
        response = client.post("/v1/suppressions", json=body, headers=tenant.auth("admin"))
        assert response.status_code == 422
        assert "not-a-number" not in response.text and "pigeon" not in response.text
