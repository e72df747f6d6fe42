"""POST /v1/leads signed the Standard Webhooks way with the org's whsec_ secret."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import dramatiq
import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from models.leads import decrypt_lead
from models.routing import rotate_signing_secret
from models.tables import Lead
from tests.helpers import wait_for
from tests.support.intake import events_of, events_settled
from tests.support.services import MakeOrg
from tests.support.signing import standard_headers

if TYPE_CHECKING:
    from tasks.context import TaskContext

pytestmark = pytest.mark.integration

LEAD = {"name": "Grace", "email": "grace.signed@example.com", "message": "Quote please"}


def rotate(context: TaskContext, org_id: uuid.UUID) -> str:
    with context.db.tenant(org_id) as session:
        return rotate_signing_secret(session, context.keys.cipher(session, org_id), context.clock())


def test_signed_lead_is_accepted_and_processed(
    client: TestClient, worker: dramatiq.Worker, make_org: MakeOrg, context: TaskContext
) -> None:
    org = make_org()
    secret = rotate(context, org.id)
    assert secret.startswith("whsec_")
    body = json.dumps(LEAD).encode()
    headers = standard_headers(secret, body, org.id, "msg_2a1b")

    first = client.post("/v1/leads", content=body, headers=headers)
    replay = client.post("/v1/leads", content=body, headers=headers)

    assert first.status_code == replay.status_code == 202
    assert first.json() == replay.json()
    wait_for(lambda: events_settled(context, org.id, 1))
    with context.db.tenant(org.id) as session:
        lead = session.scalars(select(Lead)).one()
        view = decrypt_lead(context.keys.cipher(session, org.id), lead)
    assert view.email == LEAD["email"]
    assert events_of(context, org.id)[0].external_id == "msg_2a1b"


def test_previous_secret_stays_valid_after_rotation(
    client: TestClient, make_org: MakeOrg, context: TaskContext
) -> None:
    org = make_org()
    old = rotate(context, org.id)
    new = rotate(context, org.id)
    assert old != new
    for index, secret in enumerate((old, new)):
        body = json.dumps({**LEAD, "message": f"m{index}"}).encode()
        headers = standard_headers(secret, body, org.id, f"msg_rot_{index}")
        assert client.post("/v1/leads", content=body, headers=headers).status_code == 202


def test_bad_signatures_are_403_and_store_nothing(
    client: TestClient, make_org: MakeOrg, context: TaskContext
) -> None:
    org = make_org()
    secret = rotate(context, org.id)
    other_secret = rotate(context, make_org().id)
    body = json.dumps(LEAD).encode()
    good = standard_headers(secret, body, org.id, "msg_bad")
    stale = datetime.now(tz=UTC) - timedelta(minutes=6)
    cases = [
        (body.replace(b"Grace", b"Mallory"), good),  # tampered
        (body, standard_headers(other_secret, body, org.id, "msg_bad")),  # wrong secret
        (body, standard_headers(secret, body, org.id, "msg_bad", at=stale)),  # stale
        (body, {**good, "webhook-signature": "garbage-without-comma"}),  # library ValueError
        (body, {**good, "webhook-signature": "v1,not base64!"}),
        (body, {k: v for k, v in good.items() if k != "webhook-timestamp"}),  # missing header
        (body, {k: v for k, v in good.items() if k != "webhook-org"} | {"webhook-org": "x"}),
    ]
    for content, headers in cases:
        response = client.post("/v1/leads", content=content, headers=headers)
        assert response.status_code == 403, headers
        assert "Grace" not in response.text
    assert events_of(context, org.id) == []


def test_org_without_secret_is_403_and_unknown_org_is_404(
    client: TestClient, make_org: MakeOrg
) -> None:
    org = make_org()
    body = json.dumps(LEAD).encode()
    headers = standard_headers("whsec_" + "A" * 43, body, org.id, "msg_none")
    assert client.post("/v1/leads", content=body, headers=headers).status_code == 403
    unknown = standard_headers("whsec_" + "A" * 43, body, uuid.uuid4(), "msg_none")
    response = client.post("/v1/leads", content=body, headers=unknown)
    assert (response.status_code, response.json()) == (
        404,
        {"error": "not_found", "message": "unknown organisation", "fields": None},
    )


def test_malformed_json_is_400_without_echo(client: TestClient, make_org: MakeOrg) -> None:
    org = make_org()
    response = client.post(
        "/v1/leads",
        content=b'{"name": "Secret Person", ',
        headers={**org.auth, "Content-Type": "application/json"},
    )
    assert (response.status_code, response.json()) == (
        400,
        {"error": "bad_request", "message": "malformed body", "fields": None},
    )
