"""Fixtures for the tenant API: organisations with a key per role, apps with other settings,
and an OIDC issuer on loopback (a JWKS server with keys generated here)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest
from fastapi.routing import APIRoute
from starlette.testclient import TestClient

from models.orgs import ROLES, create_api_key, create_organization
from tests.api.tenants import AUDIENCE, Issuer, Tenant, serve_issuer
from tests.api.tokens import new_signing_key
from tests.support.http import serving

if TYPE_CHECKING:
    from tasks.context import TaskContext


@pytest.fixture
def make_tenant(context: TaskContext) -> Callable[[], Tenant]:
    def make(name: str = "API Org") -> Tenant:
        org_id = uuid.uuid4()
        with context.db.tenant(org_id) as session:
            create_organization(session, context.keyring, org_id, name, actor="test")
            made = {role: create_api_key(session, org_id, "test", role) for role in ROLES}
        return Tenant(
            org_id,
            {role: key.key for role, key in made.items()},
            {role: key.prefix for role, key in made.items()},
        )

    return make


@pytest.fixture
def api_routes(context: TaskContext) -> Iterator[list[APIRoute]]:
    """The routes of the FastAPI app (inside its middleware), included routers unfolded."""
    from intake.app import create_fastapi

    app = create_fastapi(context)
    yield list(unfolded(app.routes))
    app.state.spool.close()


def unfolded(routes: list[Any]) -> Iterator[APIRoute]:
    for route in routes:
        included = getattr(route, "original_router", None)  # FastAPI's included routers
        if included is not None:
            yield from unfolded(included.routes)
        elif isinstance(route, APIRoute):
            yield route


@pytest.fixture
def issuer() -> Iterator[Issuer]:
    holder: list[Issuer] = []
    server = serve_issuer(holder)
    host, port = server.server_address[:2]
    holder.append(Issuer(f"http://{host!s}:{port}", [new_signing_key("RS256")]))
    with serving(server):
        yield holder[0]


@pytest.fixture
def oidc_client(issuer: Issuer, app_with: Callable[..., TestClient]) -> TestClient:
    """The app trusting `issuer`, keys found by discovery, a refresh at most every minute."""
    return app_with(
        leadline_oidc_issuer=issuer.url,
        leadline_oidc_audience=AUDIENCE,
        leadline_oidc_refresh_cooldown_seconds=60.0,
    )
