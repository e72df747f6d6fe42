"""The route and role table (intake/permissions.py), walked whole for every role: a role at or
above a route's least role gets an answer that is not 403 (nor 5xx); a lesser one gets 403
naming the role it needs. And the table names exactly the /v1 routes the app has."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.routing import APIRoute
from starlette.testclient import TestClient

from intake.permissions import RANK, ROUTE_ROLES
from models.orgs import ROLES
from tests.api.tenants import Tenant

pytestmark = pytest.mark.integration
PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")
# A well-formed value for every path parameter (of nothing that exists: 404 is fine).
PATH_VALUES = {"prefix": "ll_00000000", "kind": "lead_autoreply"}


def concrete(path: str) -> str:
    return PLACEHOLDER.sub(lambda m: PATH_VALUES.get(m.group(1), str(uuid.uuid4())), path)


def call(client: TestClient, method: str, path: str, headers: dict[str, str]) -> Any:
    body = None if method in ("GET", "DELETE") else {}
    return client.request(method, concrete(path), json=body, headers=headers)


def test_the_table_names_exactly_the_v1_routes_of_the_app(api_routes: list[APIRoute]) -> None:
    app_routes = {
        (method, route.path)
        for route in api_routes
        if route.path.startswith("/v1/")
        for method in route.methods
    }
    assert app_routes == set(ROUTE_ROLES)


@pytest.mark.parametrize("role", ROLES)
def test_every_route_for_every_role(
    client: TestClient, make_tenant: Callable[[], Tenant], role: str
) -> None:
    tenant = make_tenant()
    wrong: list[tuple[str, str, int, Any]] = []
    for (method, path), required in sorted(ROUTE_ROLES.items()):
        response = call(client, method, path, tenant.auth(role))
        if RANK[role] >= RANK[required]:
            if response.status_code == 403 or response.status_code >= 500:
                wrong.append((method, path, response.status_code, response.text[:200]))
        elif response.status_code != 403 or response.json() != {
            "error": "forbidden",
            "message": "your role may not do this",
            "fields": None,
            "required_role": required,
        }:
            wrong.append((method, path, response.status_code, response.text[:200]))
    assert wrong == []
