"""The walking skeleton end to end: API → encrypted inbound event → worker → encrypted lead."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dramatiq
import pytest
import redis
from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from starlette.testclient import TestClient

from leadline.settings import Settings
from models.leads import get_lead
from models.orgs import set_default_region
from models.tables import InboundEvent, Lead
from tests.helpers import wait_for
from tests.support.brokers import UNREACHABLE_URLS
from tests.support.leads import ADA, post_lead
from tests.support.services import MakeOrg

if TYPE_CHECKING:
    from tasks.context import TaskContext

pytestmark = [pytest.mark.integration, pytest.mark.both_brokers]

PLAINTEXTS = ["Ada Quartermain", "4155550199", "ada.quartermain@example.org", "quote my roof"]


def leads_of(context: TaskContext, org_id: uuid.UUID) -> list[Lead]:
    with context.db.tenant(org_id) as session:
        return list(session.scalars(select(Lead)).all())


def pg_dump(database_url: str) -> str:
    from pgserver._commands import POSTGRES_BIN_PATH

    url = make_url(database_url)
    args = [str(Path(POSTGRES_BIN_PATH) / "pg_dump"), "--no-owner", "-d", url.database or ""]
    if url.host:
        args += ["-h", url.host, "-p", str(url.port or 5432)]
    elif url.query.get("host"):
        args += ["-h", str(url.query["host"])]
    args += ["-U", url.username or "postgres"]
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout


def test_posted_lead_is_stored_encrypted_and_readable(
    client: TestClient,
    worker: dramatiq.Worker,
    make_org: MakeOrg,
    context: TaskContext,
    settings: Settings,
) -> None:
    org = make_org()
    response = post_lead(client, org, ADA)
    assert response.status_code == 202
    event_id = uuid.UUID(response.json()["id"])

    leads = wait_for(lambda: leads_of(context, org.id))
    with context.db.tenant(org.id) as session:
        view = get_lead(session, context.keys.cipher(session, org.id), leads[0].id)
        event = session.get(InboundEvent, event_id)
        assert event is not None and event.status == "processed"
    assert (view.name, view.phone, view.email) == (ADA["name"], "+14155550199", ADA["email"])
    assert view.first_message == ADA["message"] and view.sms_consent

    dump = pg_dump(settings.leadline_database_url)
    assert "leads" in dump and "inbound_events" in dump
    for plaintext in PLAINTEXTS:
        assert plaintext not in dump
    r = redis.Redis.from_url(settings.leadline_redis_url)
    stored = b"".join(
        key + r.dump(key) for key in r.scan_iter(match=f"{settings.leadline_redis_namespace}*")
    )
    for plaintext in PLAINTEXTS:
        assert plaintext.encode() not in stored


def test_same_phone_is_one_lead_per_org(
    client: TestClient, worker: dramatiq.Worker, make_org: MakeOrg, context: TaskContext
) -> None:
    org_a, org_b = make_org("A"), make_org("B")
    for org in (org_a, org_b):  # so that the national form below is read as a US number
        with context.db.tenant(org.id) as session:
            set_default_region(session, org.id, "US", actor="test")
    for org in (org_a, org_a, org_b):
        assert post_lead(client, org, {"phone": "(415) 555-0142", "name": "Bo"}).status_code == 202
    post_lead(client, org_a, {"phone": "+14155550142", "email": "bo@example.com"})

    def processed(org_id: uuid.UUID, count: int) -> bool:
        with context.db.tenant(org_id) as session:
            done = session.scalar(
                select(func.count())
                .select_from(InboundEvent)
                .where(InboundEvent.status == "processed")
            )
        return done == count

    wait_for(lambda: processed(org_a.id, 3) and processed(org_b.id, 1))
    assert len(leads_of(context, org_a.id)) == 1
    assert len(leads_of(context, org_b.id)) == 1
    with context.db.tenant(org_a.id) as session:
        lead = session.scalars(select(Lead)).one()
        view = get_lead(session, context.keys.cipher(session, org_a.id), lead.id)
    assert view.email == "bo@example.com"


def test_duplicate_idempotency_key_gives_one_event_and_one_lead(
    client: TestClient, worker: dramatiq.Worker, make_org: MakeOrg, context: TaskContext
) -> None:
    org = make_org()
    first = post_lead(client, org, {"email": "once@example.com"}, **{"Idempotency-Key": "k-1"})
    second = post_lead(client, org, {"email": "once@example.com"}, **{"Idempotency-Key": "k-1"})
    assert first.status_code == second.status_code == 202
    assert first.json()["id"] == second.json()["id"]
    wait_for(lambda: leads_of(context, org.id))
    with context.db.tenant(org.id) as session:
        assert session.scalar(select(func.count()).select_from(InboundEvent)) == 1
    assert len(leads_of(context, org.id)) == 1


def test_broker_down_still_accepts_and_keeps_the_event_pending(
    client: TestClient, make_org: MakeOrg, context: TaskContext, broker: dramatiq.Broker
) -> None:
    from workers.runtime import build_broker, install_broker

    org = make_org()
    # A broker whose server refuses connections: the same failure as the broker being stopped.
    unreachable = UNREACHABLE_URLS[broker.kind]  # type: ignore[attr-defined]
    install_broker(build_broker(unreachable, "leadline-unreachable"))
    try:
        response = post_lead(client, org, {"phone": "+14155550177"})
    finally:
        install_broker(broker)
    assert response.status_code == 202
    with context.db.tenant(org.id) as session:
        event = session.get(InboundEvent, uuid.UUID(response.json()["id"]))
        assert event is not None and event.status == "pending"
    assert leads_of(context, org.id) == []


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"Authorization": "Bearer ll_nothere_xyz"}, 401),
        ({"Authorization": "Basic abc"}, 401),
    ],
)
def test_missing_or_invalid_key_is_401(
    client: TestClient, headers: dict[str, str], status: int
) -> None:
    response = client.post("/v1/leads", json={"phone": "+14155550100"}, headers=headers)
    assert response.status_code == status
    assert response.json() == {
        "error": "unauthorized",
        "message": "invalid or missing credentials",
        "fields": None,
    }


def test_revoked_key_is_401(client: TestClient, make_org: MakeOrg, context: TaskContext) -> None:
    from models.orgs import revoke_api_key

    org = make_org()
    with context.db.maintenance() as session:
        revoke_api_key(session, "_".join(org.api_key.split("_")[:2]), context.clock())
    assert post_lead(client, org, {"phone": "+14155550100"}).status_code == 401


@pytest.mark.parametrize(
    "body",
    [
        {"name": "Secret Name"},
        {"phone": "555-SECRET-99", "name": "Secret Name"},
        {"email": "not-an-email-secret", "name": "Secret Name"},
        {"phone": "+14155550100", "unknown": "Secret Name"},
        {"phone": "+14155550100", "name": "x" * 201},
    ],
)
def test_invalid_body_is_422_without_echo(
    client: TestClient,
    make_org: MakeOrg,
    body: dict[str, Any],
    log_lines: Callable[[], list[dict[str, Any]]],
) -> None:
    org = make_org()
    response = post_lead(client, org, body)
    assert response.status_code == 422
    assert response.json()["fields"]
    assert "Secret" not in response.text and "SECRET" not in response.text
    assert "Secret" not in str(log_lines())


def test_body_over_64_kib_is_413(client: TestClient, make_org: MakeOrg) -> None:
    org = make_org()
    big = {"phone": "+14155550100", "message": "x" * (65 * 1024)}
    assert post_lead(client, org, big).status_code == 413


def test_no_submitted_pii_in_logs(
    client: TestClient,
    worker: dramatiq.Worker,
    make_org: MakeOrg,
    context: TaskContext,
    log_lines: Callable[[], list[dict[str, Any]]],
) -> None:
    org = make_org()
    assert post_lead(client, org, ADA).status_code == 202
    wait_for(lambda: leads_of(context, org.id))
    text = "\n".join(str(line) for line in log_lines())
    assert "request" in text
    for plaintext in PLAINTEXTS:
        assert plaintext not in text
