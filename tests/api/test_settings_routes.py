"""Events of POST /v1/leads, alert recipients and message templates through the API."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import dramatiq
import pytest
from starlette.testclient import TestClient

from tests.api.tenants import Tenant
from tests.helpers import wait_for

pytestmark = pytest.mark.integration


def test_a_posted_lead_is_followed_through_its_event(
    client: TestClient, make_tenant: Callable[[], Tenant], worker: dramatiq.Worker
) -> None:
    tenant = make_tenant()
    posted = client.post(
        "/v1/leads", json={"email": "flow@example.com"}, headers=tenant.auth("ingest")
    )
    assert posted.status_code == 202
    location = posted.headers["Location"]
    assert location == f"/v1/events/{posted.json()['id']}"

    def processed() -> dict[str, Any] | None:
        body = dict(client.get(location, headers=tenant.auth("ingest")).json())
        return body if body["status"] == "processed" else None

    event = wait_for(processed)
    lead = client.get(f"/v1/leads/{event['lead_id']}", headers=tenant.auth("member")).json()
    assert lead["email"] == "flow@example.com"


def test_alert_recipients(client: TestClient, make_tenant: Callable[[], Tenant]) -> None:
    tenant = make_tenant()
    admin = tenant.auth("admin")
    added = client.post("/v1/alert-recipients", json={"phone": "+1 415 555 0111"}, headers=admin)
    twice = client.post("/v1/alert-recipients", json={"phone": "+14155550111"}, headers=admin)
    assert added.status_code == twice.status_code == 201
    assert added.json() == twice.json()
    listed = client.get("/v1/alert-recipients", headers=admin).json()["data"]
    assert [(r["id"], r["phone"]) for r in listed] == [(added.json()["id"], "+14155550111")]
    removed = client.request(
        "DELETE", "/v1/alert-recipients", json={"phone": "+14155550111"}, headers=admin
    )
    assert removed.json() == {"id": added.json()["id"], "deleted": True}
    gone = client.request(
        "DELETE", "/v1/alert-recipients", json={"phone": "+14155550111"}, headers=admin
    )
    assert gone.status_code == 404
    assert client.get("/v1/alert-recipients", headers=admin).json()["data"] == []


def test_message_templates(client: TestClient, make_tenant: Callable[[], Tenant]) -> None:
    tenant = make_tenant()
    admin = tenant.auth("admin")
    url = "/v1/message-templates/lead_autoreply"
    default = client.get(url, headers=admin).json()
    assert default["default"] is True and "STOP" in default["template"]
    custom = client.put(
        url, json={"template": "Thanks {name}! Reply STOP to opt out."}, headers=admin
    )
    assert custom.json() == {
        "kind": "lead_autoreply",
        "template": "Thanks {name}! Reply STOP to opt out.",
        "default": False,
    }
    refused = client.put(url, json={"template": "Hi {password}"}, headers=admin)
    assert refused.status_code == 422 and "password" not in refused.text
    assert client.put(url, json={"template": None}, headers=admin).json() == default
    assert client.get("/v1/message-templates/no_such_kind", headers=admin).status_code == 404
