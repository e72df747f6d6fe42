"""GET /v1/events/{id}: what became of an event POST /v1/leads accepted (its `Location`)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request

from intake.api_errors import not_found
from intake.api_schemas import EventOut
from intake.principals import CurrentPrincipal
from intake.tenant_calls import in_tenant
from models.routing import event_status

router = APIRouter(tags=["leads"])


@router.get("/v1/events/{event_id}", response_model=EventOut)
async def event(request: Request, principal: CurrentPrincipal, event_id: uuid.UUID) -> EventOut:
    """`pending` until a worker has stored the lead, then `processed` with its id (`failed`
    if it could not be). An event spooled during a database outage is 404 until replayed."""
    found = await in_tenant(request, principal, lambda call: event_status(call.session, event_id))
    if found is None:
        raise not_found()
    status, lead_id = found
    return EventOut(id=event_id, status=status, lead_id=lead_id)
