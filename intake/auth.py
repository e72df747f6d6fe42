"""Caller authentication for the API: Bearer API keys, or Standard Webhooks signatures."""

from __future__ import annotations

import uuid

from starlette.requests import Request

from leadline.errors import KeyNotFoundError, VerificationError
from models.orgs import ResolvedKey, resolve_api_key
from models.routing import org_accepts_events, signing_secrets
from tasks.context import TaskContext


def bearer_token(request: Request) -> str:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise VerificationError("missing bearer API key")
    return token.strip()


def authenticate_api_key(context: TaskContext, token: str) -> ResolvedKey:
    """The org that owns the key and its role; VerificationError for unknown, revoked or
    (after a rotation's overlap) expired keys."""
    if len(token) > 200:
        raise VerificationError("invalid API key")
    with context.db.maintenance() as session:
        resolved = resolve_api_key(session, token)
    if resolved is None:
        raise VerificationError("invalid API key")
    return resolved


def api_key_prefix(token: str) -> str:
    """The visible part of a key (`ll_1a2b3c4d`), enough to count its requests."""
    return "_".join(token.split("_")[:2])[:32]


def signing_org(request: Request) -> uuid.UUID:
    """The org a Standard Webhooks request names in its `webhook-org` header."""
    try:
        return uuid.UUID(request.headers.get("webhook-org", ""))
    except ValueError:
        raise VerificationError("missing or malformed webhook-org header") from None


def load_signing_secrets(context: TaskContext, org_id: uuid.UUID) -> list[str] | None:
    """The org's current (and, for 24 h after rotation, previous) secret; None if no such org."""
    try:
        with context.db.tenant(org_id) as session:
            if not org_accepts_events(session, org_id):
                return None
            cipher = context.keys.cipher(session, org_id)
            return signing_secrets(session, cipher, context.clock())
    except KeyNotFoundError:
        return None
