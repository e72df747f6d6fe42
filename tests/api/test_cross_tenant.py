"""Every `{id}` route, called by another organisation's owner with this organisation's ids,
answers 404 exactly like an id that never existed (never 403: no existence oracle), and
changes nothing."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import func, select
from starlette.testclient import TestClient

from intake.permissions import ROUTE_ROLES
from models.tables import ApiKey, AuditEntry, Lead
from tests.api.seeding import Seeded, seed_everything
from tests.api.tenants import Tenant

if TYPE_CHECKING:
    from tasks.context import TaskContext

pytestmark = pytest.mark.integration
PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")
# A body each writing route accepts, so the only reason left to refuse is the id.
BODIES: dict[tuple[str, str], Any] = {
    ("PATCH", "/v1/leads/{lead_id}"): {"status": "won"},
    ("POST", "/v1/leads/{lead_id}/messages"): {"body": "Hi"},
    ("PATCH", "/v1/webhook-endpoints/{endpoint_id}"): {"description": "x"},
}
QUERIES: dict[tuple[str, str], dict[str, str]] = {
    ("POST", "/v1/webhook-endpoints/{endpoint_id}/recover"): {"since": "7d"},
}
ID_ROUTES = sorted(
    route for route in ROUTE_ROLES if PLACEHOLDER.search(route[1]) and "{kind}" not in route[1]
)


def path_of(template: str, seeded: Seeded) -> str:
    values = {
        "lead_id": seeded.lead_id,
        "endpoint_id": seeded.endpoint_id,
        "delivery_id": seeded.delivery_id,
        "campaign_id": seeded.campaign_id,
        "event_id": seeded.event_id,
        "prefix": seeded.key_prefix,
        "connection_id": seeded.connection_id,
        "import_id": seeded.import_id,
    }
    return PLACEHOLDER.sub(lambda m: str(values[m.group(1)]), template)


def counts(context: TaskContext, org_id: Any) -> tuple[int, ...]:
    with context.db.tenant(org_id) as session:
        return tuple(
            int(session.scalar(select(func.count()).select_from(table)) or 0)
            for table in (AuditEntry, Lead, ApiKey)
        )


def test_another_organisations_ids_are_404_on_every_id_route(
    client: TestClient, context: TaskContext, make_tenant: Callable[[], Tenant]
) -> None:
    victim, intruder = make_tenant(), make_tenant()
    seeded = seed_everything(context, victim.id, victim.prefixes["member"])
    before = counts(context, victim.id)
    answers = {}
    for method, template in ID_ROUTES:
        response = client.request(
            method,
            path_of(template, seeded),
            json=BODIES.get((method, template)),
            params=QUERIES.get((method, template)),
            headers=intruder.auth("owner"),
        )
        answers[(method, template)] = (response.status_code, response.json())
    not_found = (404, {"error": "not_found", "message": "not found", "fields": None})
    assert answers == {route: not_found for route in ID_ROUTES}
    assert counts(context, victim.id) == before


def test_the_same_calls_by_the_owner_find_them(
    client: TestClient, context: TaskContext, make_tenant: Callable[[], Tenant]
) -> None:
    """The walk above means something: with the right organisation, no route is 404."""
    tenant = make_tenant()
    seeded = seed_everything(context, tenant.id, tenant.prefixes["member"])
    statuses = {}
    for method, template in ID_ROUTES:
        if method == "DELETE":
            continue  # deleting is covered by each resource's own test
        response = client.request(
            method,
            path_of(template, seeded),
            json=BODIES.get((method, template)),
            params=QUERIES.get((method, template)),
            headers=tenant.auth("owner"),
        )
        statuses[(method, template)] = response.status_code
    assert {route: code for route, code in statuses.items() if code == 404} == {}
