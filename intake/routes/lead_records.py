"""GET /v1/leads (filtered pages), GET /v1/leads/{id}, PATCH /v1/leads/{id} (status,
assignee; publishes `lead.updated`). Exact lookups only, by phone or email through the blind
index: the data is encrypted, so there is no substring search."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request

from intake.api_errors import ApiError, not_found
from intake.api_schemas import LeadOut, LeadPage, LeadPatch, LeadStatus
from intake.pagination import DEFAULT_LIMIT, Cursor, Limit, decode_cursor, next_cursor
from intake.principals import CurrentPrincipal
from intake.schemas import e164_or_422
from intake.tenant_calls import TenantCall, in_tenant
from models.lead_listing import LeadFilter, LeadRecord, find_lead, list_leads
from models.normalize import normalize_email
from tasks.lead_updates import LeadChanges, update_lead

router = APIRouter(tags=["leads"])


def lead_out(record: LeadRecord) -> LeadOut:
    return LeadOut.model_validate(record, from_attributes=True)


def lookup_filter(
    call: TenantCall, base: LeadFilter, phone: str | None, email: str | None
) -> LeadFilter:
    e164 = e164_or_422(phone, ["query", "phone"]) if phone else None
    phone_bidx = call.cipher.blind_index("phone", e164) if e164 is not None else None
    email_bidx = call.cipher.blind_index("email", normalize_email(email)) if email else None
    return LeadFilter(
        base.status,
        base.source,
        base.created_after,
        base.created_before,
        base.sms_consent,
        phone_bidx,
        email_bidx,
    )


@router.get("/v1/leads", response_model=LeadPage)
async def leads(
    request: Request,
    principal: CurrentPrincipal,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
    status: LeadStatus | None = None,
    source: Annotated[str | None, Query(max_length=64)] = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    consent: Literal["sms"] | None = None,
    phone: Annotated[str | None, Query(max_length=32, description="Exact, E.164.")] = None,
    email: Annotated[str | None, Query(max_length=254, description="Exact.")] = None,
) -> LeadPage:
    """The organisation's leads, newest first. Filters combine; `phone`/`email` are exact."""
    position = decode_cursor(cursor)
    base = LeadFilter(status, source, created_after, created_before, True if consent else None)

    def read(call: TenantCall) -> list[LeadRecord]:
        where = lookup_filter(call, base, phone, email)
        return list_leads(call.session, call.cipher, where, position, limit)

    rows = await in_tenant(request, principal, read)
    return LeadPage(data=[lead_out(row) for row in rows], next_cursor=next_cursor(rows, limit))


@router.get("/v1/leads/{lead_id}", response_model=LeadOut)
async def lead(request: Request, principal: CurrentPrincipal, lead_id: uuid.UUID) -> LeadOut:
    record = await in_tenant(
        request, principal, lambda call: find_lead(call.session, call.cipher, lead_id)
    )
    if record is None:
        raise not_found()
    return lead_out(record)


@router.patch("/v1/leads/{lead_id}", response_model=LeadOut)
async def change_lead(
    request: Request, principal: CurrentPrincipal, lead_id: uuid.UUID, body: LeadPatch
) -> LeadOut:
    """Change the status and/or the assignee (null clears it); audited, `lead.updated` sent."""
    changes = LeadChanges(body.status, body.assignee, "assignee" in body.model_fields_set)
    if not changes.fields():
        raise ApiError(422, "nothing to change (give status and/or assignee)")

    def change(call: TenantCall) -> LeadRecord:
        return update_lead(
            call.session, call.cipher, lead_id, changes, call.actor, call.after_commit, call.now
        )

    return lead_out(await in_tenant(request, principal, change))
