"""Webhook endpoints of the organisation: list, create (URL vetted by the SSRF guard, secret
shown once), read, change (a new URL vetted again; `enabled` disables or enables), delete,
rotate the secret (the old one signs too for 24 h), recover failed deliveries, and list
deliveries. The same functions `leadline endpoint ...` and `leadline webhook recover` call."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request

from intake.api_errors import ApiError, FieldError
from intake.api_schemas import (
    DeliveryOut,
    DeliveryPage,
    EndpointCreated,
    EndpointIn,
    EndpointList,
    EndpointOut,
    EndpointPatch,
    RecoverOut,
    Removed,
    SecretOut,
)
from intake.pagination import DEFAULT_LIMIT, Cursor, Limit, decode_cursor, next_cursor
from intake.principals import CurrentPrincipal
from intake.tenant_calls import TenantCall, in_tenant
from leadline.netguard import UnsafeTargetError
from leadline.timespec import parse_moment
from models.webhook_endpoints import (
    EndpointChanges,
    EndpointSpec,
    InvalidEndpointError,
    UrlPolicy,
    create_endpoint,
    delete_endpoint,
    enable_endpoint,
    endpoint_summary,
    get_endpoint,
    list_endpoints,
    rotate_secret,
    update_endpoint,
)
from models.webhooks import WebhookDelivery, WebhookEndpoint
from tasks.webhooks.http import current_resolver
from tasks.webhooks.lifecycle import disable_endpoint_by_id
from tasks.webhooks.operations import EndpointDisabledError, list_deliveries, recover_deliveries

router = APIRouter(tags=["webhooks"])
DISABLED_BY_API = "disabled through the API"
Moment = Annotated[str, Query(max_length=64, description="ISO 8601, or 30m / 2h / 7d ago.")]


def endpoint_out(endpoint: WebhookEndpoint) -> EndpointOut:
    return EndpointOut(**{k: v for k, v in endpoint_summary(endpoint).items() if k != "org_id"})


def refused(exc: Exception) -> ApiError:
    """The SSRF guard's or the definition's reason, which names no submitted value."""
    field: FieldError = {"loc": ["body"], "msg": str(exc)[:200], "type": type(exc).__name__}
    return ApiError(422, "invalid request", fields=[field])


def policy(call: TenantCall) -> UrlPolicy:
    return UrlPolicy.from_settings(call.context.settings)


@router.get("/v1/webhook-endpoints", response_model=EndpointList)
async def endpoints(request: Request, principal: CurrentPrincipal) -> EndpointList:
    """Every endpoint (an organisation has few: one page)."""
    rows = await in_tenant(
        request, principal, lambda call: [endpoint_out(e) for e in list_endpoints(call.session)]
    )
    return EndpointList(data=rows, next_cursor=None)


@router.post("/v1/webhook-endpoints", status_code=201, response_model=EndpointCreated)
async def create(
    request: Request, principal: CurrentPrincipal, body: EndpointIn
) -> EndpointCreated:
    spec = EndpointSpec(
        body.url, tuple(body.event_types), body.description, tuple(body.shared_fields)
    )

    def add(call: TenantCall) -> EndpointCreated:
        new = create_endpoint(
            call.session,
            call.cipher,
            spec,
            policy(call),
            resolver=current_resolver(),
            actor=call.actor,
        )
        endpoint = get_endpoint(call.session, new.endpoint_id)
        call.session.refresh(endpoint)
        return EndpointCreated(**endpoint_out(endpoint).model_dump(), secret=new.secret)

    try:
        return await in_tenant(request, principal, add)
    except (UnsafeTargetError, InvalidEndpointError) as exc:
        raise refused(exc) from None


@router.get("/v1/webhook-endpoints/{endpoint_id}", response_model=EndpointOut)
async def endpoint(
    request: Request, principal: CurrentPrincipal, endpoint_id: uuid.UUID
) -> EndpointOut:
    return await in_tenant(
        request, principal, lambda call: endpoint_out(get_endpoint(call.session, endpoint_id))
    )


@router.patch("/v1/webhook-endpoints/{endpoint_id}", response_model=EndpointOut)
async def change(
    request: Request, principal: CurrentPrincipal, endpoint_id: uuid.UUID, body: EndpointPatch
) -> EndpointOut:
    changes = EndpointChanges(
        body.url,
        body.description,
        tuple(body.event_types) if body.event_types is not None else None,
        tuple(body.shared_fields) if body.shared_fields is not None else None,
    )

    def apply(call: TenantCall) -> EndpointOut:
        endpoint = update_endpoint(
            call.session,
            endpoint_id,
            changes,
            policy(call),
            call.now,
            resolver=current_resolver(),
            actor=call.actor,
        )
        if body.enabled is True and not endpoint.enabled:
            endpoint = enable_endpoint(call.session, endpoint_id, call.now, actor=call.actor)
        elif body.enabled is False:
            endpoint = disable_endpoint_by_id(
                call.session,
                call.cipher,
                endpoint_id,
                DISABLED_BY_API,
                call.after_commit,
                call.now,
                actor=call.actor,
            )
        return endpoint_out(endpoint)

    try:
        return await in_tenant(request, principal, apply)
    except (UnsafeTargetError, InvalidEndpointError) as exc:
        raise refused(exc) from None


@router.delete("/v1/webhook-endpoints/{endpoint_id}", response_model=Removed)
async def delete(request: Request, principal: CurrentPrincipal, endpoint_id: uuid.UUID) -> Removed:
    """The endpoint with its deliveries and attempt log (audited; cannot be undone)."""
    await in_tenant(
        request,
        principal,
        lambda call: delete_endpoint(call.session, endpoint_id, actor=call.actor),
    )
    return Removed(id=endpoint_id, deleted=True)


@router.post("/v1/webhook-endpoints/{endpoint_id}/rotate-secret", response_model=SecretOut)
async def rotate(
    request: Request, principal: CurrentPrincipal, endpoint_id: uuid.UUID
) -> SecretOut:
    def new_secret(call: TenantCall) -> SecretOut:
        new = rotate_secret(call.session, call.cipher, endpoint_id, call.now, actor=call.actor)
        return SecretOut(id=endpoint_id, secret=new.secret)

    return await in_tenant(request, principal, new_secret)


def moment(value: str, now: datetime, name: str) -> datetime:
    try:
        return parse_moment(value, now, name)
    except Exception:
        field: FieldError = {
            "loc": ["query", name],
            "msg": "not a time (ISO 8601, or 30m, 2h, 7d)",
            "type": "time",
        }
        raise ApiError(422, "invalid request", fields=[field]) from None


@router.post("/v1/webhook-endpoints/{endpoint_id}/recover", response_model=RecoverOut)
async def recover(
    request: Request,
    principal: CurrentPrincipal,
    endpoint_id: uuid.UUID,
    since: Moment,
    until: Annotated[str | None, Query(max_length=64)] = None,
) -> RecoverOut:
    """Re-queue the endpoint's failed and cancelled deliveries created in [since, until)."""

    def requeue(call: TenantCall) -> RecoverOut:
        start = moment(since, call.now, "since")
        end = moment(until, call.now, "until") if until else call.now
        count = recover_deliveries(
            call.session, endpoint_id, start, end, call.now, call.after_commit, actor=call.actor
        )
        return RecoverOut(endpoint_id=endpoint_id, requeued=count)

    try:
        return await in_tenant(request, principal, requeue)
    except EndpointDisabledError:
        raise ApiError(
            409, "the endpoint is disabled; enable it first", code="endpoint_disabled"
        ) from None


def delivery_out(delivery: WebhookDelivery) -> DeliveryOut:
    fields: dict[str, object] = {
        name: getattr(delivery, name) for name in DeliveryOut.model_fields if name != "webhook_id"
    }
    return DeliveryOut(webhook_id=delivery.event_id, **fields)


@router.get("/v1/webhook-endpoints/{endpoint_id}/deliveries", response_model=DeliveryPage)
async def deliveries(
    request: Request,
    principal: CurrentPrincipal,
    endpoint_id: uuid.UUID,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> DeliveryPage:
    """Newest first: state, attempts, last status or error (never a response body)."""
    position = decode_cursor(cursor)

    def read(call: TenantCall) -> list[WebhookDelivery]:
        return list_deliveries(call.session, endpoint_id, position, limit)

    rows = await in_tenant(request, principal, read)
    return DeliveryPage(
        data=[delivery_out(row) for row in rows], next_cursor=next_cursor(rows, limit)
    )
