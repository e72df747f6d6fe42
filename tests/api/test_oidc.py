"""Team members' OIDC access tokens: a valid token acts with its role; every forgery an
attacker would try is 401, and unknown `kid`s cannot make the intake hammer the issuer."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from starlette.testclient import TestClient

from leadline.settings import Settings
from tests.api.tenants import AUDIENCE, Issuer, Tenant
from tests.api.tokens import (
    claims,
    hmac_with_public_key,
    new_signing_key,
    sign,
    unsigned,
)

pytestmark = pytest.mark.integration


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_a_valid_token_acts_with_its_role(
    oidc_client: TestClient, issuer: Issuer, make_tenant: Callable[[], Tenant]
) -> None:
    tenant = make_tenant()
    key = issuer.published[0]
    owner = sign(key, claims(issuer.url, AUDIENCE, tenant.id, "owner"))
    member = sign(key, claims(issuer.url, AUDIENCE, tenant.id, "member"))

    assert oidc_client.get("/v1/export", headers=bearer(owner)).status_code == 200
    refused = oidc_client.get("/v1/export", headers=bearer(member))
    assert refused.status_code == 403
    assert refused.json()["required_role"] == "owner"
    assert issuer.jwks_fetches == 1  # cached after the first token


def test_nested_claims_and_ec_keys(
    issuer: Issuer, app_with: Callable[..., TestClient], make_tenant: Callable[[], Tenant]
) -> None:
    """Supabase-style claims (`app_metadata.org_id`, `app_metadata.role`) and ES256 keys."""
    client = app_with(
        leadline_oidc_issuer=issuer.url,
        leadline_oidc_audience=AUDIENCE,
        leadline_oidc_jwks_url=issuer.url + "/jwks.json",
        leadline_oidc_org_claim="app_metadata.org_id",
        leadline_oidc_role_claim="app_metadata.role",
    )
    tenant = make_tenant()
    key = new_signing_key("ES256")
    issuer.published.append(key)
    payload = claims(issuer.url, AUDIENCE, tenant.id, "owner")
    payload["app_metadata"] = {"org_id": payload.pop("org_id"), "role": payload.pop("role")}
    assert client.get("/v1/export", headers=bearer(sign(key, payload))).status_code == 200


def forgeries(issuer: Issuer, tenant: Tenant) -> dict[str, str]:
    key = issuer.published[0]
    stranger = new_signing_key("RS256")  # not in the issuer's key set
    valid = claims(issuer.url, AUDIENCE, tenant.id, "owner")
    past = int(time.time()) - 7200
    return {
        "alg_none": unsigned(key.kid, valid),
        "hs256_signed_with_the_public_key": hmac_with_public_key(key, valid),
        "expired": sign(key, {**valid, "iat": past, "exp": past + 600}),
        "wrong_audience": sign(key, {**valid, "aud": "someone-else"}),
        "wrong_issuer": sign(key, {**valid, "iss": "https://evil.example"}),
        "unknown_kid": sign(stranger, valid),
        "no_subject": sign(key, {k: v for k, v in valid.items() if k != "sub"}),
        "unknown_role": sign(key, {**valid, "role": "superuser"}),
        "org_not_a_uuid": sign(key, {**valid, "org_id": "acme"}),
        "org_that_does_not_exist": sign(
            key, {**valid, "org_id": "7c9e6679-7425-40de-944b-e07cc1f877bf"}
        ),
        "tampered_payload": tamper(sign(key, {**valid, "role": "member"})),
    }


def tamper(token: str) -> str:
    """The signature of a member token on a payload that says owner."""
    import base64
    import json

    header, payload, signature = token.split(".")
    claims_ = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims_["role"] = "owner"
    forged = base64.urlsafe_b64encode(json.dumps(claims_).encode()).rstrip(b"=").decode()
    return f"{header}.{forged}.{signature}"


def test_every_forgery_is_401(
    oidc_client: TestClient, issuer: Issuer, make_tenant: Callable[[], Tenant]
) -> None:
    tenant = make_tenant()
    answers: dict[str, Any] = {}
    for name, token in forgeries(issuer, tenant).items():
        response = oidc_client.get("/v1/export", headers=bearer(token))
        answers[name] = (response.status_code, response.json()["error"])
    assert answers == {name: (401, "unauthorized") for name in answers}


def test_unknown_kids_refresh_the_key_set_at_most_once_per_cooldown(
    oidc_client: TestClient, issuer: Issuer, make_tenant: Callable[[], Tenant]
) -> None:
    tenant = make_tenant()
    good = sign(issuer.published[0], claims(issuer.url, AUDIENCE, tenant.id, "owner"))
    assert oidc_client.get("/v1/export", headers=bearer(good)).status_code == 200
    for _ in range(5):
        stranger = new_signing_key("RS256")
        token = sign(stranger, claims(issuer.url, AUDIENCE, tenant.id, "owner"))
        assert oidc_client.get("/v1/export", headers=bearer(token)).status_code == 401
    assert issuer.jwks_fetches <= 2  # the first fetch, then at most one forced refresh


def test_a_rotated_key_is_found_by_refreshing_on_its_unknown_kid(
    issuer: Issuer, app_with: Callable[..., TestClient], make_tenant: Callable[[], Tenant]
) -> None:
    client = app_with(
        leadline_oidc_issuer=issuer.url,
        leadline_oidc_audience=AUDIENCE,
        leadline_oidc_refresh_cooldown_seconds=0,
    )
    tenant = make_tenant()
    first = sign(issuer.published[0], claims(issuer.url, AUDIENCE, tenant.id, "owner"))
    assert client.get("/v1/export", headers=bearer(first)).status_code == 200
    rotated = new_signing_key("RS256")
    issuer.published[:] = [rotated]
    token = sign(rotated, claims(issuer.url, AUDIENCE, tenant.id, "owner"))
    assert client.get("/v1/export", headers=bearer(token)).status_code == 200


def test_without_oidc_settings_a_token_is_401(
    client: TestClient, issuer: Issuer, make_tenant: Callable[[], Tenant]
) -> None:
    tenant = make_tenant()
    token = sign(issuer.published[0], claims(issuer.url, AUDIENCE, tenant.id, "owner"))
    assert client.get("/v1/export", headers=bearer(token)).status_code == 401


def test_symmetric_algorithms_cannot_be_configured(settings: Settings) -> None:
    from pydantic import ValidationError

    from leadline.settings import Settings

    for algorithms in ("HS256", "RS256,HS256", "none", ""):
        with pytest.raises(ValidationError):
            Settings(leadline_oidc_algorithms=algorithms)
