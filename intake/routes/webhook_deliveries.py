"""One webhook delivery: its attempt log and a resend (same webhook-id, fresh retries); the
same functions `leadline endpoint attempts` and `leadline webhook resend` use."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request

from intake.api_errors import ApiError
from intake.api_schemas import AttemptList, AttemptOut, ResendOut
from intake.principals import CurrentPrincipal
from intake.tenant_calls import TenantCall, in_tenant
from tasks.webhooks.operations import (
    DeliveryBusyError,
    EndpointDisabledError,
    delivery_attempts,
    resend_delivery,
)

router = APIRouter(tags=["webhooks"])


@router.get("/v1/webhook-deliveries/{delivery_id}/attempts", response_model=AttemptList)
async def attempts(
    request: Request, principal: CurrentPrincipal, delivery_id: uuid.UUID
) -> AttemptList:
    """Every attempt, oldest first: time, duration, outcome, status or error class."""

    def read(call: TenantCall) -> list[AttemptOut]:
        return [
            AttemptOut.model_validate(attempt, from_attributes=True)
            for attempt in delivery_attempts(call.session, delivery_id)
        ]

    return AttemptList(data=await in_tenant(request, principal, read), next_cursor=None)


@router.post(
    "/v1/webhook-deliveries/{delivery_id}/resend", status_code=202, response_model=ResendOut
)
async def resend(
    request: Request, principal: CurrentPrincipal, delivery_id: uuid.UUID
) -> ResendOut:
    def again(call: TenantCall) -> ResendOut:
        delivery = resend_delivery(
            call.session, delivery_id, call.now, call.after_commit, actor=call.actor
        )
        return ResendOut(id=delivery.id, state=delivery.state)

    try:
        return await in_tenant(request, principal, again)
    except DeliveryBusyError:
        raise ApiError(409, "the delivery is being attempted right now", code="busy") from None
    except EndpointDisabledError:
        raise ApiError(
            409, "the endpoint is disabled; enable it first", code="endpoint_disabled"
        ) from None
