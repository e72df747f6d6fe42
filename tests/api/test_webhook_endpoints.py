"""Webhook endpoints through the API: the SSRF guard at creation and on a changed URL, the
secret shown once and rotated with overlap, enable/disable, deliveries, attempts, resend,
recover and delete: the same functions the CLI calls, so their state is the CLI's."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from models.webhooks import WebhookDelivery, WebhookEndpoint
from tests.api.seeding import PUBLIC_URL, add_delivery, add_lead
from tests.api.tenants import Tenant

if TYPE_CHECKING:
    from tasks.context import TaskContext

pytestmark = pytest.mark.integration


def test_private_and_metadata_targets_are_refused(
    client: TestClient, make_tenant: Callable[[], Tenant]
) -> None:
    tenant = make_tenant()
    for url in (
        "https://127.0.0.1/hook",
        "https://169.254.169.254/latest/meta-data",
        "https://10.0.0.5/hook",
        "https://[::ffff:127.0.0.1]/hook",
        "ftp://93.184.215.14/hook",
    ):
        body = {"url": url, "event_types": ["lead.created"]}
        response = client.post("/v1/webhook-endpoints", json=body, headers=tenant.auth("admin"))
        assert response.status_code == 422, url
        assert url not in response.text


def test_endpoint_lifecycle(
    client: TestClient, context: TaskContext, make_tenant: Callable[[], Tenant]
) -> None:
    tenant = make_tenant()
    admin = tenant.auth("admin")
    created = client.post(
        "/v1/webhook-endpoints",
        json={"url": PUBLIC_URL, "event_types": ["lead.created"], "shared_fields": ["name"]},
        headers=admin,
    )
    assert created.status_code == 201
    endpoint = created.json()
    assert endpoint["secret"].startswith("whsec_")
    url = f"/v1/webhook-endpoints/{endpoint['id']}"
    shown = client.get(url, headers=admin).json()
    assert "secret" not in shown and shown["event_types"] == ["lead.created"]
    assert [e["id"] for e in client.get("/v1/webhook-endpoints", headers=admin).json()["data"]] == [
        endpoint["id"]
    ]

    moved = client.patch(url, json={"url": "https://192.168.1.1/x"}, headers=admin)
    assert moved.status_code == 422
    changed = client.patch(
        url, json={"event_types": ["lead.created", "lead.updated"]}, headers=admin
    )
    assert changed.json()["event_types"] == ["lead.created", "lead.updated"]

    rotated = client.post(f"{url}/rotate-secret", headers=admin).json()
    assert rotated["secret"].startswith("whsec_") and rotated["secret"] != endpoint["secret"]
    with context.db.tenant(tenant.id) as session:
        row = session.get(WebhookEndpoint, endpoint["id"])
        assert row is not None and row.previous_secret_expires_at is not None

    lead_id = add_lead(context, tenant.id, email="hook@example.com")
    delivery_id = add_delivery(context, tenant.id, lead_id)
    deliveries = client.get(f"{url}/deliveries", headers=tenant.auth("member")).json()["data"]
    assert [(d["id"], d["state"], d["event_type"]) for d in deliveries] == [
        (str(delivery_id), "pending", "lead.created")
    ]
    attempts = client.get(f"/v1/webhook-deliveries/{delivery_id}/attempts", headers=admin)
    assert attempts.json()["data"] == []

    disabled = client.patch(url, json={"enabled": False}, headers=admin).json()
    assert disabled["enabled"] is False
    with context.db.tenant(tenant.id) as session:
        assert session.get(WebhookDelivery, delivery_id).state == "cancelled"  # type: ignore[union-attr]
    resend = client.post(f"/v1/webhook-deliveries/{delivery_id}/resend", headers=admin)
    assert (resend.status_code, resend.json()["error"]) == (409, "endpoint_disabled")
    assert client.patch(url, json={"enabled": True}, headers=admin).json()["enabled"] is True
    recovered = client.post(f"{url}/recover", params={"since": "1h"}, headers=admin)
    assert recovered.json() == {"endpoint_id": endpoint["id"], "requeued": 1}
    with context.db.tenant(tenant.id) as session:
        assert session.get(WebhookDelivery, delivery_id).state == "pending"  # type: ignore[union-attr]
    resent = client.post(f"/v1/webhook-deliveries/{delivery_id}/resend", headers=admin)
    assert (resent.status_code, resent.json()["state"]) == (202, "pending")
    bad_since = client.post(f"{url}/recover", params={"since": "last tuesday"}, headers=admin)
    assert bad_since.status_code == 422

    assert client.delete(url, headers=admin).json() == {"id": endpoint["id"], "deleted": True}
    assert client.get(url, headers=admin).status_code == 404
    with context.db.tenant(tenant.id) as session:
        assert session.scalars(select(WebhookDelivery.id)).all() == []
