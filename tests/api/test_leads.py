"""GET /v1/leads pages (limit, opaque cursor, stable order, filters, exact phone/email),
GET and PATCH one lead (status, assignee, `lead.updated` through the webhook outbox)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import select, update
from starlette.testclient import TestClient

from models.tables import Lead
from models.webhooks import WebhookDelivery
from tests.api.seeding import add_endpoint, add_lead
from tests.api.tenants import Tenant

if TYPE_CHECKING:
    from tasks.context import TaskContext

pytestmark = pytest.mark.integration


def all_pages(client: TestClient, tenant: Tenant, **params: Any) -> list[list[str]]:
    pages, cursor = [], None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        body = client.get("/v1/leads", params=query, headers=tenant.auth("member")).json()
        pages.append([lead["id"] for lead in body["data"]])
        cursor = body["next_cursor"]
        if cursor is None:
            return pages


def test_pages_are_stable_newest_first_and_cover_every_lead_once(
    client: TestClient, context: TaskContext, make_tenant: Callable[[], Tenant]
) -> None:
    tenant = make_tenant()
    ids = [str(add_lead(context, tenant.id, email=f"p{n}@example.com")) for n in range(7)]
    with context.db.tenant(tenant.id) as session:  # two leads created in the same instant
        session.execute(update(Lead).values(created_at=datetime(2026, 1, 1, tzinfo=UTC)))
    pages = all_pages(client, tenant, limit=3)
    assert [len(page) for page in pages] == [3, 3, 1]
    flat = [lead for page in pages for lead in page]
    assert sorted(flat) == sorted(ids)
    assert flat == sorted(ids, reverse=True)  # same time: by id, descending
    first = client.get("/v1/leads", params={"limit": 3}, headers=tenant.auth("member")).json()
    add_lead(context, tenant.id, email="late@example.com")  # arrives while paging
    params = {"limit": 3, "cursor": first["next_cursor"]}
    second = client.get("/v1/leads", params=params, headers=tenant.auth("member")).json()
    assert [lead["id"] for lead in second["data"]] == pages[1]


def test_filters_and_exact_lookups(
    client: TestClient, context: TaskContext, make_tenant: Callable[[], Tenant]
) -> None:
    tenant = make_tenant()
    ada = add_lead(context, tenant.id, name="Ada", phone="+14155550123", sms_consent=True)
    bob = add_lead(context, tenant.id, email="Bob@Example.com", source="webform")
    old = add_lead(context, tenant.id, email="old@example.com")
    with context.db.tenant(tenant.id) as session:
        session.execute(
            update(Lead)
            .where(Lead.id == old)
            .values(created_at=datetime(2020, 1, 1, tzinfo=UTC), status="won")
        )

    def ids(**params: Any) -> set[str]:
        response = client.get("/v1/leads", params=params, headers=tenant.auth("member"))
        assert response.status_code == 200, response.text
        return {lead["id"] for lead in response.json()["data"]}

    assert ids(phone="+1 (415) 555-0123") == {str(ada)}
    assert ids(email="bob@example.com") == {str(bob)}
    assert ids(consent="sms") == {str(ada)}
    assert ids(source="webform") == {str(bob)}
    assert ids(status="won") == {str(old)}
    assert ids(created_before="2021-01-01T00:00:00Z") == {str(old)}
    assert ids(created_after="2021-01-01T00:00:00Z") == {str(ada), str(bob)}
    assert ids(phone="+14155550199") == set()


def test_bad_queries_are_422_naming_the_parameter_without_its_value(
    client: TestClient, make_tenant: Callable[[], Tenant]
) -> None:
    tenant = make_tenant()
    for params, where in (
        ({"limit": 201}, ["query", "limit"]),
        ({"cursor": "secret-looking-cursor"}, ["query", "cursor"]),
        ({"status": "archived"}, ["query", "status"]),
        ({"phone": "call me maybe"}, ["query", "phone"]),
    ):
        response = client.get("/v1/leads", params=params, headers=tenant.auth("member"))
        body = response.json()
        assert response.status_code == 422
        assert body["error"] == "invalid_request"
        assert [field["loc"] for field in body["fields"]] == [where]
        assert str(params[where[1]]) not in response.text


def test_get_and_patch_one_lead(
    client: TestClient, context: TaskContext, make_tenant: Callable[[], Tenant]
) -> None:
    tenant = make_tenant()
    lead_id = add_lead(context, tenant.id, name="Ada", phone="+14155550123", message="Hi")
    add_endpoint(context, tenant.id)  # subscribed to lead.updated
    shown = client.get(f"/v1/leads/{lead_id}", headers=tenant.auth("member")).json()
    assert (shown["name"], shown["phone"], shown["first_message"]) == ("Ada", "+14155550123", "Hi")
    assert (shown["status"], shown["assignee"]) == ("new", None)

    patched = client.patch(
        f"/v1/leads/{lead_id}",
        json={"status": "qualified", "assignee": "user_42"},
        headers=tenant.auth("member"),
    )
    assert patched.status_code == 200
    assert (patched.json()["status"], patched.json()["assignee"]) == ("qualified", "user_42")
    cleared = client.patch(
        f"/v1/leads/{lead_id}", json={"assignee": None}, headers=tenant.auth("member")
    )
    assert (cleared.json()["status"], cleared.json()["assignee"]) == ("qualified", None)
    with context.db.tenant(tenant.id) as session:
        updates = session.scalars(
            select(WebhookDelivery.event_type).where(WebhookDelivery.lead_id == lead_id)
        ).all()
    assert updates == ["lead.updated", "lead.updated"]

    for body in ({"status": "archived"}, {}, {"status": "won", "score": 3}):
        refused = client.patch(f"/v1/leads/{lead_id}", json=body, headers=tenant.auth("member"))
        assert refused.status_code == 422, body


def test_a_page_of_50_decrypts_with_one_key_load(
    client: TestClient,
    context: TaskContext,
    make_tenant: Callable[[], Tenant],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import models.keys

    tenant = make_tenant()
    for n in range(50):
        add_lead(context, tenant.id, name=f"Lead {n}", email=f"l{n}@example.com")
    context.keys.forget(tenant.id)
    loads: list[Any] = []
    real = models.keys.load_cipher
    monkeypatch.setattr(models.keys, "load_cipher", lambda *a: loads.append(a) or real(*a))
    page = client.get("/v1/leads", params={"limit": 50}, headers=tenant.auth("member")).json()
    assert len(page["data"]) == 50 and all(lead["name"] for lead in page["data"])
    assert len(loads) == 1


def test_created_after_accepts_offsets(
    client: TestClient, context: TaskContext, make_tenant: Callable[[], Tenant]
) -> None:
    tenant = make_tenant()
    lead = add_lead(context, tenant.id, email="tz@example.com")
    since = (datetime.now(UTC) - timedelta(hours=1)).astimezone().isoformat()
    page = client.get("/v1/leads", params={"created_after": since}, headers=tenant.auth("member"))
    assert [row["id"] for row in page.json()["data"]] == [str(lead)]
