"""GET|PUT /v1/message-templates/{kind}: the texts of alerts, auto-replies and HELP answers
(placeholders from a fixed list only; models/message_templates.py)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from intake.api_errors import ApiError, FieldError, not_found
from intake.api_schemas import TemplateIn, TemplateOut
from intake.principals import CurrentPrincipal
from intake.tenant_calls import TenantCall, in_tenant
from models.alert_settings import load_org_messaging, set_template
from models.message_templates import DEFAULT_TEMPLATES, PLACEHOLDERS, TemplateError

router = APIRouter(tags=["alerts"])


def current(call: TenantCall, kind: str) -> TemplateOut:
    custom = load_org_messaging(call.session, call.cipher.org_id, None).templates.get(kind)
    return TemplateOut(kind=kind, template=custom or DEFAULT_TEMPLATES[kind], default=not custom)


@router.get("/v1/message-templates/{kind}", response_model=TemplateOut)
async def template(request: Request, principal: CurrentPrincipal, kind: str) -> TemplateOut:
    """`kind`: owner_alert_sms, owner_alert_telegram, lead_updated_sms, ..., help_reply."""
    if kind not in DEFAULT_TEMPLATES:
        raise not_found()
    return await in_tenant(request, principal, lambda call: current(call, kind))


@router.put("/v1/message-templates/{kind}", response_model=TemplateOut)
async def put_template(
    request: Request, principal: CurrentPrincipal, kind: str, body: TemplateIn
) -> TemplateOut:
    """Set the text, or `null` to go back to the default (audited)."""
    if kind not in DEFAULT_TEMPLATES:
        raise not_found()

    def write(call: TenantCall) -> TemplateOut:
        set_template(call.session, call.cipher.org_id, kind, body.template, actor=call.actor)
        return current(call, kind)

    try:
        return await in_tenant(request, principal, write)
    except TemplateError as exc:
        raise ApiError(422, "invalid request", fields=[template_error(exc)]) from None


def template_error(_: TemplateError) -> FieldError:
    """TemplateError's own text quotes the unknown placeholders: not repeated here."""
    allowed = ", ".join(sorted(PLACEHOLDERS))
    message = f"empty, too long, control characters or unknown placeholders (allowed: {allowed})"
    return {"loc": ["body", "template"], "msg": message, "type": "template"}
