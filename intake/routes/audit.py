"""GET /v1/audit (owner): who changed what, newest first; ids and codes, never personal data."""

from __future__ import annotations

from fastapi import APIRouter, Request

from intake.api_schemas import AuditOut, AuditPage
from intake.pagination import DEFAULT_LIMIT, Cursor, Limit, decode_cursor, next_cursor
from intake.principals import CurrentPrincipal
from intake.tenant_calls import in_tenant
from models.audit import audit_page

router = APIRouter(tags=["audit"])


@router.get("/v1/audit", response_model=AuditPage)
async def audit(
    request: Request,
    principal: CurrentPrincipal,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> AuditPage:
    position = decode_cursor(cursor)
    rows = await in_tenant(
        request, principal, lambda call: audit_page(call.session, position, limit)
    )
    return AuditPage(
        data=[AuditOut.model_validate(row, from_attributes=True) for row in rows],
        next_cursor=next_cursor(rows, limit),
    )
