"""The OAuth `state` of a social-channel authorization: signed, bound to org and principal,
single-use, valid ten minutes.

    state = base64url(JSON {"v": 1, "org", "sub", "nonce", "exp"}) "." base64url(HMAC-SHA256)

The HMAC (LEADLINE_OAUTH_STATE_SECRET; in development a key derived from META_APP_SECRET) is
over a fixed label and the encoded claims, compared in constant time before anything in them
is read. The nonce is recorded (hashed) with org and principal when the state is issued;
the callback deletes that row, which only one request can do (models/connections.py).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from leadline.errors import ConfigError, VerificationError
from leadline.settings import Settings

STATE_LIFETIME = timedelta(minutes=10)
LABEL = b"leadline.oauth.meta.state.v1."
DEVELOPMENT_KEY_INFO = b"leadline development oauth state key"
MAX_STATE_LENGTH = 1024


@dataclass(frozen=True)
class StateClaims:
    org_id: uuid.UUID
    principal: str
    nonce: str
    expires_at: datetime


def state_key(settings: Settings) -> bytes:
    """The signing key; ConfigError when there is none (production needs its own)."""
    if settings.leadline_oauth_state_secret is not None:
        secret = settings.leadline_oauth_state_secret.get_secret_value().strip()
        if secret:
            return secret.encode()
    if settings.is_production or settings.meta_app_secret is None:
        raise ConfigError("LEADLINE_OAUTH_STATE_SECRET is not set")
    app_secret = settings.meta_app_secret.get_secret_value().encode()
    return hmac.new(app_secret, DEVELOPMENT_KEY_INFO, hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(key: bytes, encoded_claims: str) -> bytes:
    return hmac.new(key, LABEL + encoded_claims.encode(), hashlib.sha256).digest()


def new_claims(org_id: uuid.UUID, principal: str, now: datetime) -> StateClaims:
    return StateClaims(org_id, principal, secrets.token_urlsafe(24), now + STATE_LIFETIME)


def sign_state(key: bytes, claims: StateClaims) -> str:
    body = {
        "v": 1,
        "org": str(claims.org_id),
        "sub": claims.principal,
        "nonce": claims.nonce,
        "exp": int(claims.expires_at.timestamp()),
    }
    encoded = _b64(json.dumps(body, separators=(",", ":"), sort_keys=True).encode())
    return f"{encoded}.{_b64(_mac(key, encoded))}"


def verify_state(key: bytes, state: str, now: datetime) -> StateClaims:
    """The claims of a state this server signed and that has not expired; VerificationError
    for anything else (the message never says which part failed)."""
    encoded, dot, signature = state.partition(".")
    if len(state) > MAX_STATE_LENGTH or not dot or not encoded:
        raise VerificationError("invalid state")
    try:
        given = _unb64(signature)
    except (binascii.Error, ValueError):
        raise VerificationError("invalid state") from None
    if not hmac.compare_digest(given, _mac(key, encoded)):
        raise VerificationError("invalid state")
    claims = _parse_claims(encoded)
    if claims.expires_at <= now:
        raise VerificationError("invalid state")
    return claims


def _parse_claims(encoded: str) -> StateClaims:
    try:
        body = json.loads(_unb64(encoded))
        claims = StateClaims(
            uuid.UUID(body["org"]),
            str(body["sub"]),
            str(body["nonce"]),
            datetime.fromtimestamp(int(body["exp"]), tz=UTC),
        )
    except (ValueError, KeyError, TypeError):
        raise VerificationError("invalid state") from None
    if body.get("v") != 1:
        raise VerificationError("invalid state")
    return claims
