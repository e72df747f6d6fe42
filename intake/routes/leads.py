"""POST /v1/leads: a lead from a customer's form or system, authenticated by API key."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, Response

from intake.auth import authenticate_api_key, bearer_token
from intake.inbound import store_inbound_event
from intake.responses import error_response
from intake.schemas import LeadIn, field_errors
from leadline.errors import VerificationError
from leadline.logging import mark_sensitive
from tasks.context import TaskContext

router = APIRouter()
IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")


def lead_payload(lead: LeadIn, received_at: datetime) -> dict[str, Any]:
    payload = lead.model_dump(mode="json", exclude_none=True)
    payload["received_at"] = received_at.isoformat()
    return payload


@router.post("/v1/leads", status_code=202)
async def create_lead(request: Request) -> Response:
    context: TaskContext = request.app.state.context
    try:
        org_id = await run_in_threadpool(authenticate_api_key, context, bearer_token(request))
    except VerificationError:
        return error_response(401, "invalid or missing API key")
    idempotency_key = request.headers.get("idempotency-key")
    if idempotency_key is not None and not IDEMPOTENCY_KEY.match(idempotency_key):
        return error_response(400, "Idempotency-Key must be 1-255 printable ASCII characters")
    if not request.headers.get("content-type", "").startswith("application/json"):
        return error_response(415, "content type must be application/json")
    try:
        lead = LeadIn.model_validate_json(await request.body())
    except ValidationError as exc:
        return error_response(422, "invalid request body", fields=field_errors(exc))
    mark_sensitive(lead.name, lead.phone, lead.email)
    stored = await run_in_threadpool(
        store_inbound_event,
        context,
        org_id,
        "api",
        idempotency_key,
        lead_payload(lead, context.clock()),
        request.state.request_id,
    )
    return JSONResponse({"id": str(stored.id)}, status_code=202)
