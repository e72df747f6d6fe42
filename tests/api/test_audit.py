"""Every change through the tenant API is audited under its principal (`key:<prefix>` or
`oidc:<sub>`), without personal data; GET /v1/audit pages through them newest first."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from starlette.testclient import TestClient

from tests.api.conftest import AUDIENCE, Issuer, Tenant
from tests.api.seeding import add_lead
from tests.api.tokens import claims, sign

pytestmark = pytest.mark.integration
PHONE = "+14155550177"


def entries(client: TestClient, tenant: Tenant, **params: Any) -> dict[str, Any]:
    response = client.get("/v1/audit", params=params, headers=tenant.auth("owner"))
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_changes_are_audited_under_the_principal_without_pii(
    oidc_client: TestClient, issuer: Issuer, context: Any, make_tenant: Callable[[], Tenant]
) -> None:
    tenant = make_tenant()
    lead_id = add_lead(context, tenant.id, name="Dora Secret", phone=PHONE)
    payload = claims(issuer.url, AUDIENCE, tenant.id, "admin", sub="firebase-uid-123")
    token = {"Authorization": f"Bearer {sign(issuer.published[0], payload)}"}
    steps = [
        oidc_client.patch(f"/v1/leads/{lead_id}", json={"status": "contacted"}, headers=token),
        oidc_client.post("/v1/alert-recipients", json={"phone": "+14155550188"}, headers=token),
        oidc_client.put(
            "/v1/message-templates/lead_autoreply",
            json={"template": "Thanks, {name}!"},
            headers=token,
        ),
        oidc_client.post(
            "/v1/leads",
            json={"name": "Eve", "email": "eve@example.com"},
            headers=tenant.auth("ingest"),
        ),
    ]
    assert [step.status_code for step in steps] == [200, 201, 200, 202]
    data = entries(oidc_client, tenant)["data"]
    actions = [(entry["actor"], entry["action"]) for entry in data]
    assert ("oidc:firebase-uid-123", "lead.updated") in actions
    assert ("oidc:firebase-uid-123", "alerts.number_added") in actions
    assert ("oidc:firebase-uid-123", "alerts.template_set") in actions
    assert (f"key:{tenant.prefixes['ingest']}", "lead.submitted") in actions
    text = str(data)
    for personal in ("Dora", PHONE, "+14155550188", "Eve", "eve@example.com", "Thanks"):
        assert personal not in text


def test_pages_newest_first(
    client: TestClient, context: Any, make_tenant: Callable[[], Tenant]
) -> None:
    tenant = make_tenant()
    for n in range(5):
        client.post(
            "/v1/api-keys", json={"role": "member", "label": f"k{n}"}, headers=tenant.auth()
        )
    seen: list[dict[str, Any]] = []
    page = entries(client, tenant, limit=4)
    while True:
        seen += page["data"]
        if page["next_cursor"] is None:
            break
        page = entries(client, tenant, limit=4, cursor=page["next_cursor"])
    assert len({entry["id"] for entry in seen}) == len(seen) == 1 + 4 + 5  # org, keys, ours
    moments = [entry["created_at"] for entry in seen]
    assert moments == sorted(moments, reverse=True)
    assert sum(entry["action"] == "apikey.created" for entry in seen) == 5 + 4  # + the fixture's
