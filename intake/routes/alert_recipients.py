"""The numbers and email addresses that receive the organisation's lead alerts (by SMS, by
email): list, add, remove. The one to remove goes in the body, never the URL (no personal data
in URLs)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

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
from models.alert_settings import (
    add_alert_email,
    add_alert_number,
    alert_emails,
    alert_numbers,
    remove_alert_email,
    remove_alert_number,
)

router = APIRouter(tags=["alerts"])


def e164(phone: str) -> str:
    mark_sensitive(phone)
    return e164_or_422(phone, ["body", "phone"])


@router.get("/v1/alert-recipients", response_model=AlertRecipientList)
async def recipients(request: Request, principal: CurrentPrincipal) -> AlertRecipientList:
    """Every alert number, then every alert email (an organisation has few: one page)."""

    def read(call: TenantCall) -> list[AlertRecipientOut]:
        numbers = [
            AlertRecipientOut(id=target.row_id, phone=target.address)
            for target in alert_numbers(call.session, call.cipher)
        ]
        return numbers + [
            AlertRecipientOut(id=target.row_id, email=target.address)
            for target in alert_emails(call.session, call.cipher)
        ]

    return AlertRecipientList(data=await in_tenant(request, principal, read), next_cursor=None)


@dataclass(frozen=True)
class Recipient:
    """A checked alert recipient: an E.164 number or an email address."""

    phone: str | None
    email: str | None

    def add(self, call: TenantCall) -> uuid.UUID:
        if self.email is not None:
            return add_alert_email(call.session, call.cipher, self.email, actor=call.actor)
        assert self.phone is not None
        return add_alert_number(call.session, call.cipher, self.phone, actor=call.actor)

    def remove(self, call: TenantCall) -> uuid.UUID:
        if self.email is not None:
            return remove_alert_email(call.session, call.cipher, self.email, actor=call.actor)
        assert self.phone is not None
        return remove_alert_number(call.session, call.cipher, self.phone, actor=call.actor)


def recipient_of(body: AlertRecipientIn) -> Recipient:
    if body.email is not None:
        mark_sensitive(body.email)
        return Recipient(None, body.email)
    return Recipient(e164(body.phone or ""), None)


@router.post("/v1/alert-recipients", status_code=201, response_model=Accepted)
async def add(
    request: Request, principal: CurrentPrincipal, body: AlertRecipientIn
) -> JSONResponse:
    """Idempotent: a number or address added twice is one recipient (the answer names it by id)."""
    row_id = await in_tenant(request, principal, recipient_of(body).add)
    return JSONResponse({"id": str(row_id)}, status_code=201)


@router.delete("/v1/alert-recipients", response_model=Removed)
async def remove(request: Request, principal: CurrentPrincipal, body: AlertRecipientIn) -> Removed:
    row_id = await in_tenant(request, principal, recipient_of(body).remove)
    return Removed(id=row_id, deleted=True)
