"""Fixtures for the tenant API: organisations with a key per role, apps with other settings,
and an OIDC issuer on loopback (a JWKS server with keys generated here)."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from fastapi.routing import APIRoute
from starlette.testclient import TestClient

from models.orgs import ROLES, create_api_key, create_organization
from tests.api.tokens import SigningKey, new_signing_key

AUDIENCE = "leadline-test-audience"


@dataclass(frozen=True)
class Tenant:
    id: uuid.UUID
    keys: dict[str, str]  # role -> API key
    prefixes: dict[str, str]

    def auth(self, role: str = "owner") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[role]}"}


@pytest.fixture
def make_tenant(context: Any) -> Callable[[], Tenant]:
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
def app_with(context: Any) -> Iterator[Callable[..., TestClient]]:
    """A TestClient over an app whose settings differ (OIDC, limits); closed after."""
    from intake.app import create_app

    clients: list[TestClient] = []

    def build(**overrides: Any) -> TestClient:
        settings = context.settings.model_copy(update=overrides)
        client = TestClient(
            create_app(replace(context, settings=settings)), raise_server_exceptions=False
        )
        clients.append(client.__enter__())
        return client

    yield build
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def api_routes(context: Any) -> Iterator[list[APIRoute]]:
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


@dataclass
class Issuer:
    """An OIDC issuer on 127.0.0.1: discovery document and JWKS of `published` keys."""

    url: str
    published: list[SigningKey]
    jwks_fetches: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def jwks(self) -> dict[str, Any]:
        with self.lock:
            self.jwks_fetches += 1
            return {"keys": [key.public_jwk() for key in self.published]}


def serve_issuer(issuer_holder: list[Issuer]) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            issuer = issuer_holder[0]
            if self.path == "/.well-known/openid-configuration":
                body = {"issuer": issuer.url, "jwks_uri": issuer.url + "/jwks.json"}
            elif self.path == "/jwks.json":
                body = issuer.jwks()
            else:
                self.send_error(404)
                return
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return ThreadingHTTPServer(("127.0.0.1", 0), Handler)


@pytest.fixture
def issuer() -> Iterator[Issuer]:
    holder: list[Issuer] = []
    server = serve_issuer(holder)
    host, port = server.server_address[:2]
    holder.append(Issuer(f"http://{host!s}:{port}", [new_signing_key("RS256")]))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield holder[0]
    server.shutdown()
    server.server_close()


@pytest.fixture
def oidc_client(issuer: Issuer, app_with: Callable[..., TestClient]) -> TestClient:
    """The app trusting `issuer`, keys found by discovery, a refresh at most every minute."""
    return app_with(
        leadline_oidc_issuer=issuer.url,
        leadline_oidc_audience=AUDIENCE,
        leadline_oidc_refresh_cooldown_seconds=60.0,
    )
