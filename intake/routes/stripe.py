"""POST /hooks/stripe: Stripe-Signature (300 s tolerance, any of several v1) → billing events.

Routed by the event's customer id (`leadline org link-stripe`). Stripe retries for days, so
a verified event for an unknown customer, or of a type Leadline ignores, is answered 200 and
dropped.
"""

from __future__ import annotations

import re
import uuid

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse, Response

from intake.hooks import (
    accept,
    context_of,
    drop,
    malformed,
    remembered,
    routed_in_maintenance,
    verified_json,
)
from intake.verify import verify_stripe
from leadline.jsondata import JsonObject
from models.billing import org_for_stripe_customer

router = APIRouter()
SOURCE = "stripe"
EVENT_ID = re.compile(r"^evt_[A-Za-z0-9_]{1,250}$")
HANDLED_TYPES = {
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
    "invoice.payment_failed",
}


def customer_id(event: JsonObject) -> str | None:
    data = event.get("data")
    obj = data.get("object") if isinstance(data, dict) else None
    if not isinstance(obj, dict):
        return None
    customer = obj.get("id") if obj.get("object") == "customer" else obj.get("customer")
    if isinstance(customer, dict):
        customer = customer.get("id")
    return customer if isinstance(customer, str) and 0 < len(customer) <= 255 else None


async def route(request: Request, customer: str | None) -> uuid.UUID | Response | None:
    if customer is None:
        return None
    return await remembered(
        request,
        "stripe_customer",
        customer,
        lambda: routed_in_maintenance(
            context_of(request),
            "stripe_customer",
            customer,
            lambda session: org_for_stripe_customer(session, customer),
        ),
    )


@router.post("/hooks/stripe")
async def stripe_webhook(request: Request) -> Response:
    secret = context_of(request).settings.stripe_webhook_secret
    event = await verified_json(request, SOURCE, secret, "stripe-signature", verify_stripe)
    if isinstance(event, Response):
        return event
    event_id = event.get("id")
    if not isinstance(event_id, str) or not EVENT_ID.match(event_id):
        return malformed()
    if event.get("type") not in HANDLED_TYPES:
        return JSONResponse({"received": True})
    org_id = await route(request, customer_id(event))
    if isinstance(org_id, Response):
        return org_id
    if org_id is None:
        return drop(request, SOURCE, "unknown_org")
    refused = await accept(request, org_id, SOURCE, event_id, event)
    return refused or JSONResponse({"received": True})
