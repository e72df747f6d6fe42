"""Bearer API keys."""

from __future__ import annotations

import uuid

from starlette.requests import Request

from leadline.errors import VerificationError
from models.orgs import resolve_api_key
from tasks.context import TaskContext


def bearer_token(request: Request) -> str:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise VerificationError("missing bearer API key")
    return token.strip()


def authenticate_api_key(context: TaskContext, token: str) -> uuid.UUID:
    """The org that owns the key; VerificationError for unknown or revoked keys."""
    if len(token) > 200:
        raise VerificationError("invalid API key")
    with context.db.maintenance() as session:
        org_id = resolve_api_key(session, token)
    if org_id is None:
        raise VerificationError("invalid API key")
    return org_id
