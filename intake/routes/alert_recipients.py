"""The numbers that receive the organisation's lead alerts by SMS: list, add, remove. The
number to remove goes in the body, never the URL (no personal data in URLs)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse

from intake.api_schemas import (
    Accepted,
    AlertRecipientIn,
    AlertRecipientList,
    AlertRecipientOut,
    Removed,
)
from intake.principals import CurrentPrincipal
from intake.schemas import e164_or_422
from intake.tenant_calls import TenantCall, in_tenant
from leadline.logging import mark_sensitive
from models.alert_settings import add_alert_number, alert_numbers, remove_alert_number

router = APIRouter(tags=["alerts"])


def e164(body: AlertRecipientIn) -> str:
    mark_sensitive(body.phone)
    return e164_or_422(body.phone, ["body", "phone"])


@router.get("/v1/alert-recipients", response_model=AlertRecipientList)
async def recipients(request: Request, principal: CurrentPrincipal) -> AlertRecipientList:
    """Every alert number (an organisation has few: one page)."""

    def read(call: TenantCall) -> list[AlertRecipientOut]:
        return [
            AlertRecipientOut(id=target.row_id, phone=target.address)
            for target in alert_numbers(call.session, call.cipher)
        ]

    return AlertRecipientList(data=await in_tenant(request, principal, read), next_cursor=None)


@router.post("/v1/alert-recipients", status_code=201, response_model=Accepted)
async def add(
    request: Request, principal: CurrentPrincipal, body: AlertRecipientIn
) -> JSONResponse:
    """Idempotent: a number added twice is one recipient (the answer names it, not the number)."""
    number = e164(body)
    row_id = await in_tenant(
        request,
        principal,
        lambda call: add_alert_number(call.session, call.cipher, number, actor=call.actor),
    )
    return JSONResponse({"id": str(row_id)}, status_code=201)


@router.delete("/v1/alert-recipients", response_model=Removed)
async def remove(request: Request, principal: CurrentPrincipal, body: AlertRecipientIn) -> Removed:
    number = e164(body)
    row_id = await in_tenant(
        request,
        principal,
        lambda call: remove_alert_number(call.session, call.cipher, number, actor=call.actor),
    )
    return Removed(id=row_id, deleted=True)
