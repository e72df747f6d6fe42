"""Social channels connected by OAuth (docs/api.md "Connections"): start an authorization
(GET /v1/connections/meta/authorize), list the connections, revoke one. Tokens never leave
the server: a connection is shown by its kind, the business's account id and its status."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from intake.api_errors import ApiError, not_found
from intake.hooks import context_of
from intake.principals import CurrentPrincipal
from intake.tenant_calls import TenantCall, in_tenant
from leadline.errors import NotFoundError
from models.connections import ConnectionView, list_connections
from tasks.connections import (
    NotConfiguredError,
    ProviderUnavailableError,
    revoke_connection,
    start_authorization,
)

router = APIRouter(tags=["connections"])


class AuthorizationOut(BaseModel):
    url: str
    state: str
    expires_at: datetime


class ConnectionOut(BaseModel):
    id: uuid.UUID
    kind: Literal["instagram", "messenger", "whatsapp"]
    account_id: str
    account_name: str | None
    status: Literal["active", "expired", "revoked"]
    last_error_code: str | None
    created_at: datetime
    updated_at: datetime


class ConnectionList(BaseModel):
    data: list[ConnectionOut]
    next_cursor: str | None = None


class RevokedOut(BaseModel):
    id: uuid.UUID
    # Every connection the same Meta grant made: revoking it ends them all.
    revoked: list[uuid.UUID]


def connection_out(view: ConnectionView) -> ConnectionOut:
    return ConnectionOut.model_validate(view, from_attributes=True)


@router.get(
    "/v1/connections/meta/authorize",
    response_model=AuthorizationOut,
    responses={503: {"description": "`not_configured`: no META_APP_ID / META_APP_SECRET"}},
)
async def authorize(request: Request, principal: CurrentPrincipal) -> AuthorizationOut:
    """The URL of Meta's login dialog for Instagram, Messenger and WhatsApp. Its `state` is
    signed, bound to this organisation and principal, single-use and valid ten minutes."""

    def start(call: TenantCall) -> AuthorizationOut:
        settings = call.context.settings
        found = start_authorization(call.session, settings, principal.org_id, call.actor, call.now)
        return AuthorizationOut(url=found.url, state=found.state, expires_at=found.expires_at)

    try:
        return await in_tenant(request, principal, start)
    except NotConfiguredError:
        raise ApiError(503, "social channels are not configured", code="not_configured") from None


@router.get("/v1/connections", response_model=ConnectionList)
async def connections(request: Request, principal: CurrentPrincipal) -> ConnectionList:
    """Every connection of the organisation (few: one page), oldest first."""
    found = await in_tenant(request, principal, lambda call: list_connections(call.session))
    return ConnectionList(data=[connection_out(view) for view in found])


@router.delete(
    "/v1/connections/{connection_id}",
    response_model=RevokedOut,
    responses={502: {"description": "`provider_unavailable`: Meta could not revoke; unchanged"}},
)
async def revoke(
    request: Request, principal: CurrentPrincipal, connection_id: uuid.UUID
) -> RevokedOut:
    """Revoke the access at Meta, then delete the tokens. Meta revokes the whole grant, so
    every connection made by the same authorization becomes `revoked` too."""
    context = context_of(request)
    try:
        revoked = await run_in_threadpool(
            revoke_connection, context, principal.org_id, connection_id, principal.subject
        )
    except NotFoundError:  # another org's connection is not seen, and Meta is not called
        raise not_found() from None
    except ProviderUnavailableError:
        message = "Meta could not revoke the access"
        raise ApiError(502, message, code="provider_unavailable") from None
    return RevokedOut(id=connection_id, revoked=revoked)
