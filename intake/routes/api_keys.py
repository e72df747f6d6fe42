"""The organisation's API keys (owner): list, create with a role (or rotate: `replaces` an
active key, which keeps working for 24 hours more), revoke at once by prefix."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse

from intake.api_schemas import ApiKeyCreated, ApiKeyIn, ApiKeyList, ApiKeyOut, RevokedKey
from intake.principals import CurrentPrincipal
from intake.tenant_calls import TenantCall, in_tenant
from models.orgs import NewApiKey, create_api_key, list_api_keys, revoke_api_key, rotate_api_key

router = APIRouter(tags=["api keys"])


@router.get("/v1/api-keys", response_model=ApiKeyList)
async def api_keys(request: Request, principal: CurrentPrincipal) -> ApiKeyList:
    """Every key, oldest first (never the key or its hash)."""
    rows = await in_tenant(
        request,
        principal,
        lambda call: [ApiKeyOut(**asdict(key)) for key in list_api_keys(call.session)],
    )
    return ApiKeyList(data=rows, next_cursor=None)


def created(new: NewApiKey) -> ApiKeyCreated:
    return ApiKeyCreated(
        id=new.id,
        prefix=new.prefix,
        role=new.role,
        label=new.label,
        key=new.key,
        created_at=new.created_at,
        revoked_at=None,
        expires_at=None,
        replaced_until=new.replaced_until,
    )


@router.post("/v1/api-keys", status_code=201, response_model=ApiKeyCreated)
async def create(request: Request, principal: CurrentPrincipal, body: ApiKeyIn) -> JSONResponse:
    """A new key (shown once). With `replaces`: a rotation, the new key taking the replaced
    key's role and label, and the replaced key working until `replaced_until` (24 h)."""

    def make(call: TenantCall) -> NewApiKey:
        org_id = call.cipher.org_id
        if body.replaces is not None:
            return rotate_api_key(call.session, org_id, body.replaces, call.now, call.actor)
        return create_api_key(call.session, org_id, call.actor, body.role or "owner", body.label)

    new = await in_tenant(request, principal, make)
    return JSONResponse(created(new).model_dump(mode="json"), status_code=201)


@router.delete("/v1/api-keys/{prefix}", response_model=RevokedKey)
async def revoke(request: Request, principal: CurrentPrincipal, prefix: str) -> RevokedKey:
    """Revoked at once, a rotation's overlap included. Another organisation's prefix is 404."""
    await in_tenant(
        request,
        principal,
        lambda call: revoke_api_key(call.session, prefix, call.now, call.actor),
    )
    return RevokedKey(prefix=prefix, revoked=True)
