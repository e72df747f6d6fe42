"""Team members' OIDC access tokens, verified with PyJWT against the issuer's JWKS.

A token is accepted only when it is signed with one of LEADLINE_OIDC_ALGORITHMS (asymmetric
only: `none` and HMAC are refused before any key is looked at, so a public key can never be
used as an HMAC secret) by a key of the issuer's key set with the token's `kid`, names
LEADLINE_OIDC_ISSUER and LEADLINE_OIDC_AUDIENCE, carries `exp`, `iat` and `sub`, has not
expired, and carries an organisation id and a role in the configured claims.

The key set is cached (LEADLINE_OIDC_JWKS_CACHE_SECONDS); a `kid` not in it forces one refresh,
at most every LEADLINE_OIDC_REFRESH_COOLDOWN_SECONDS, so tokens with made-up `kid`s cannot
make us hammer the issuer. The JWKS URL is LEADLINE_OIDC_JWKS_URL, or the `jwks_uri` of the
issuer's discovery document (`<issuer>/.well-known/openid-configuration`), read once.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass

import httpx
import jwt

from leadline.errors import VerificationError
from leadline.jsondata import JsonObject
from leadline.settings import Settings
from models.orgs import Role, parse_role

LEEWAY_SECONDS = 30
MAX_SUBJECT = 128
DISCOVERY_PATH = "/.well-known/openid-configuration"
FETCH_TIMEOUT_SECONDS = 5.0


@dataclass(frozen=True)
class TokenClaims:
    org_id: uuid.UUID
    role: Role
    subject: str


class OidcVerifier:
    def __init__(self, settings: Settings) -> None:
        assert settings.leadline_oidc_issuer and settings.leadline_oidc_audience
        self.issuer = settings.leadline_oidc_issuer
        self.audience = settings.leadline_oidc_audience
        self.algorithms = list(settings.oidc_algorithms)
        self.org_claim = settings.leadline_oidc_org_claim
        self.role_claim = settings.leadline_oidc_role_claim
        self.jwks_url = settings.leadline_oidc_jwks_url
        self.cache_seconds = settings.leadline_oidc_jwks_cache_seconds
        self.cooldown = settings.leadline_oidc_refresh_cooldown_seconds
        self._client: jwt.PyJWKClient | None = None
        self._lock = threading.Lock()

    def verify(self, token: str) -> TokenClaims:
        """The token's org, role and subject; VerificationError for anything else."""
        try:
            header = jwt.get_unverified_header(token)
            if header.get("alg") not in self.algorithms:
                raise VerificationError("token algorithm not accepted")
            key = self.keys().get_signing_key_from_jwt(token)
            claims = jwt.decode(
                token,
                key=key,
                algorithms=self.algorithms,
                audience=self.audience,
                issuer=self.issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "iat", "iss", "aud", "sub"]},
            )
        except (jwt.PyJWTError, ValueError) as exc:
            raise VerificationError(f"token refused ({type(exc).__name__})") from None
        return self.principal_claims(claims)

    def principal_claims(self, claims: JsonObject) -> TokenClaims:
        subject = claims.get("sub")
        if not isinstance(subject, str) or not 0 < len(subject) <= MAX_SUBJECT:
            raise VerificationError("token subject missing or too long")
        try:
            org_id = uuid.UUID(str(claim_at(claims, self.org_claim)))
            role = parse_role(str(claim_at(claims, self.role_claim)))
        except ValueError:
            raise VerificationError("token carries no usable organisation or role") from None
        return TokenClaims(org_id, role, subject)

    def keys(self) -> jwt.PyJWKClient:
        with self._lock:
            if self._client is None:
                self._client = jwt.PyJWKClient(
                    self.jwks_url or discover_jwks_url(self.issuer),
                    cache_jwk_set=True,
                    lifespan=self.cache_seconds,
                    timeout=FETCH_TIMEOUT_SECONDS,
                    cooldown_duration=self.cooldown,
                )
            return self._client


def claim_at(claims: JsonObject, path: str) -> object:
    """A claim by dotted path (`app_metadata.org_id` reaches Supabase's nested claims)."""
    value: object = claims
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            raise ValueError(f"claim {path} missing")
        value = value[part]
    return value


def discover_jwks_url(issuer: str) -> str:
    try:
        response = httpx.get(
            issuer.rstrip("/") + DISCOVERY_PATH,
            timeout=FETCH_TIMEOUT_SECONDS,
            follow_redirects=False,
        )
        response.raise_for_status()
        url = response.json()["jwks_uri"]
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
        raise jwt.PyJWKClientConnectionError(f"discovery failed ({type(exc).__name__})") from None
    if not isinstance(url, str):
        raise jwt.PyJWKClientConnectionError("discovery document has no jwks_uri")
    return url
