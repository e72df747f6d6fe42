"""API keys through the API (owner): created with a role, listed without secrets, rotated
with a 24-hour overlap, revoked at once; and the CLI's `apikey create --role`."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import update
from starlette.testclient import TestClient

from models.tables import ApiKey
from tests.api.tenants import Tenant

if TYPE_CHECKING:
    from tasks.context import TaskContext

pytestmark = pytest.mark.integration


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_create_with_role_list_and_revoke(
    client: TestClient, make_tenant: Callable[[], Tenant]
) -> None:
    tenant = make_tenant()
    made = client.post(
        "/v1/api-keys", json={"role": "ingest", "label": "web form"}, headers=tenant.auth()
    )
    assert made.status_code == 201
    key = made.json()
    assert (key["role"], key["label"]) == ("ingest", "web form")
    assert (
        client.post(
            "/v1/leads", json={"email": "a@example.com"}, headers=bearer(key["key"])
        ).status_code
        == 202
    )
    assert client.get("/v1/leads", headers=bearer(key["key"])).status_code == 403

    listed = client.get("/v1/api-keys", headers=tenant.auth()).json()["data"]
    assert key["prefix"] in [row["prefix"] for row in listed]
    assert key["key"] not in str(listed)

    revoked = client.delete(f"/v1/api-keys/{key['prefix']}", headers=tenant.auth())
    assert revoked.json() == {"prefix": key["prefix"], "revoked": True}
    assert (
        client.post(
            "/v1/leads", json={"email": "b@example.com"}, headers=bearer(key["key"])
        ).status_code
        == 401
    )
    assert client.delete(f"/v1/api-keys/{key['prefix']}", headers=tenant.auth()).status_code == 404


def test_rotation_keeps_the_old_key_working_until_the_overlap_ends(
    client: TestClient, context: TaskContext, make_tenant: Callable[[], Tenant]
) -> None:
    tenant = make_tenant()
    old = client.post(
        "/v1/api-keys", json={"role": "member", "label": "dash"}, headers=tenant.auth()
    ).json()
    new = client.post(
        "/v1/api-keys", json={"replaces": old["prefix"]}, headers=tenant.auth()
    ).json()
    assert (new["role"], new["label"]) == ("member", "dash")
    assert new["replaced_until"] is not None
    for key in (old["key"], new["key"]):
        assert client.get("/v1/leads", headers=bearer(key)).status_code == 200
    listed = {
        row["prefix"]: row
        for row in client.get("/v1/api-keys", headers=tenant.auth()).json()["data"]
    }
    assert listed[old["prefix"]]["expires_at"] == new["replaced_until"]

    with context.db.tenant(tenant.id) as session:  # the overlap is over
        session.execute(
            update(ApiKey)
            .where(ApiKey.prefix == old["prefix"])
            .values(expires_at=ApiKey.created_at - timedelta(seconds=1))
        )
    assert client.get("/v1/leads", headers=bearer(old["key"])).status_code == 401
    assert client.get("/v1/leads", headers=bearer(new["key"])).status_code == 200
    again = client.post("/v1/api-keys", json={"replaces": old["prefix"]}, headers=tenant.auth())
    assert again.status_code == 404


def test_bad_requests(client: TestClient, make_tenant: Callable[[], Tenant]) -> None:
    tenant = make_tenant()
    for body in ({"role": "root"}, {"label": "x" * 101}, {"replaces": "nope"}, {"scope": "all"}):
        assert client.post("/v1/api-keys", json=body, headers=tenant.auth()).status_code == 422


def test_cli_creates_keys_with_a_role(
    context: TaskContext, make_tenant: Callable[[], Tenant]
) -> None:
    import json

    from typer.testing import CliRunner

    from leadline.cli import app

    tenant = make_tenant()
    made = CliRunner().invoke(
        app, ["apikey", "create", str(tenant.id), "--role", "member", "--json"]
    )
    assert made.exit_code == 0, made.stderr
    assert json.loads(made.stdout)["role"] == "member"
    listed = CliRunner().invoke(app, ["apikey", "list", str(tenant.id), "--json"])
    roles = {row["prefix"]: row["role"] for row in json.loads(listed.stdout)}
    assert roles[json.loads(made.stdout)["prefix"]] == "member"
    default = CliRunner().invoke(app, ["apikey", "create", str(tenant.id), "--json"])
    assert json.loads(default.stdout)["role"] == "owner"
    bad = CliRunner().invoke(app, ["apikey", "create", str(tenant.id), "--role", "root"])
    assert bad.exit_code == 1
    assert bad.stderr.startswith("error: role must be one of")
