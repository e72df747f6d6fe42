"""Tenants with a key per role, and an OIDC issuer on loopback, for the tenant API tests."""

from __future__ import annotations

import json
import threading
import uuid
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from typing import Any

from tests.api.tokens import SigningKey
from tests.support.http import QuietHandler

AUDIENCE = "leadline-test-audience"


@dataclass(frozen=True)
class Tenant:
    id: uuid.UUID
    keys: dict[str, str]  # role -> API key
    prefixes: dict[str, str]

    def auth(self, role: str = "owner") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[role]}"}


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
    class Handler(QuietHandler):
        def do_GET(self) -> None:
            issuer = issuer_holder[0]
            if self.path == "/.well-known/openid-configuration":
                body = {"issuer": issuer.url, "jwks_uri": issuer.url + "/jwks.json"}
            elif self.path == "/jwks.json":
                body = issuer.jwks()
            else:
                self.send_error(404)
                return
            self.reply(200, json.dumps(body).encode(), {"Content-Type": "application/json"})

    return ThreadingHTTPServer(("127.0.0.1", 0), Handler)
