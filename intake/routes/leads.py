"""POST /v1/leads: a lead from a customer's form or system.

Authenticated by a Bearer API key, or signed the Standard Webhooks way (`webhook-id`,
`webhook-timestamp`, `webhook-signature`) with the org's `whsec_` secret and the org named
in a `webhook-org` header.

Idempotency: the key is the `Idempotency-Key` header, or for a signed request the signed
`webhook-id` (the unsigned header is ignored there, so a captured request cannot be replayed
under a new key). A key's first request is fingerprinted (models.routing.request_fingerprint of
the canonical JSON of the validated lead): the same lead again answers the same 202 and id, a
different one 422 and is not stored.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from datetime import datetime

from fastapi import APIRouter, Request
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, Response

from intake.api_errors import api_error
from intake.auth import load_signing_secrets, signing_org
from intake.hooks import context_of, malformed, media_type, reject, store_or_spool
from intake.limits import count_auth_failure, hit, limiter_of
from intake.principals import authenticate, check_role
from intake.responses import error_response
from intake.schemas import DEFAULT_REGION, NEEDS_REGION, LeadIn, field_errors
from intake.spool import database_unreachable, unavailable
from intake.verify import verify_standard_webhook
from leadline.errors import VerificationError
from leadline.jsondata import JsonObject
from leadline.logging import mark_sensitive
from models.orgs import default_region
from tasks.context import TaskContext

router = APIRouter()
IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")
SOURCE = "api"
KEY_REUSED = "idempotency key reused with a different body"
KEY_REUSED_CODE = "idempotency_key_reused"


@dataclass(frozen=True)
class Caller:
    org_id: uuid.UUID
    limit_key: str
    actor: str  # the audit log's name for the caller
    message_id: str | None = None


def lead_payload(lead: LeadIn, received_at: datetime) -> JsonObject:
    payload = lead.model_dump(mode="json", exclude_none=True)
    payload["received_at"] = received_at.isoformat()
    return payload


async def bearer_caller(request: Request) -> Caller:
    """An API key or OIDC token; every role may post leads (intake/permissions.py)."""
    principal = await authenticate(request, spoolable=True)
    check_role(principal, "POST", "/v1/leads")
    return Caller(principal.org_id, principal.limit_key, principal.subject)


async def signed_caller(request: Request, body: bytes) -> Caller | Response:
    try:
        org_id = signing_org(request)
    except VerificationError:
        return await reject(request, SOURCE, "missing_org")
    secrets = await run_in_threadpool(load_signing_secrets, context_of(request), org_id)
    if secrets is None:
        await count_auth_failure(request, "signed_leads")
        return error_response(404, "unknown organisation")
    try:
        verify_standard_webhook(secrets, body, request.headers)
    except VerificationError:
        return await reject(request, SOURCE, "bad_signature")
    message_id = request.headers.get("webhook-id", "")
    if not IDEMPOTENCY_KEY.match(message_id):
        return error_response(400, "webhook-id must be 1-255 printable ASCII characters")
    return Caller(org_id, f"org:{org_id}", "signed", message_id)


def is_signed(request: Request) -> bool:
    return "authorization" not in request.headers and "webhook-signature" in request.headers


def parse_lead(body: bytes, region: str | None = None) -> LeadIn | ValidationError:
    try:
        return LeadIn.model_validate_json(body, context={DEFAULT_REGION: region})
    except ValidationError as exc:
        return exc


def org_region(context: TaskContext, org_id: uuid.UUID) -> str | None:
    with context.db.tenant(org_id) as session:
        return default_region(session, org_id)


async def read_lead(request: Request, body: bytes, org_id: uuid.UUID) -> LeadIn | Response:
    """The validated lead; the org's default region is looked up only for a national number
    (503 while the database is unreachable: such a lead cannot be spooled)."""
    lead = parse_lead(body)
    if isinstance(lead, ValidationError) and needs_region(lead):
        try:
            region = await run_in_threadpool(org_region, context_of(request), org_id)
        except Exception as exc:
            if not database_unreachable(exc):
                raise
            return unavailable()
        if region is not None:
            lead = parse_lead(body, region)
    if not isinstance(lead, ValidationError):
        return lead
    if any(error["type"] == "json_invalid" for error in lead.errors()):
        return malformed()
    return error_response(422, "invalid request body", fields=field_errors(lead))


def needs_region(error: ValidationError) -> bool:
    return any(item["type"] == NEEDS_REGION for item in error.errors())


def canonical_lead(lead: LeadIn) -> str:
    """The lead as compared across retries: validated, normalised, keys sorted."""
    data = lead.model_dump(mode="json", exclude_none=True)
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@router.post("/v1/leads", status_code=202)
async def create_lead(request: Request) -> Response:
    """Authenticated by a Bearer credential (any role) or a Standard Webhooks signature."""
    body = await request.body()
    caller = await (signed_caller(request, body) if is_signed(request) else bearer_caller(request))
    if isinstance(caller, Response):
        return caller
    idempotency_key = caller.message_id or request.headers.get("idempotency-key")
    lead = await checked_lead(request, body, caller, idempotency_key)
    if isinstance(lead, Response):
        await hit(request, "api", caller.limit_key)  # refused requests count too (429 first)
        return lead
    context = context_of(request)
    mark_sensitive(lead.name, lead.phone, lead.email)
    if lead.consent is not None:
        mark_sensitive(lead.consent.ip, lead.consent.page_url)
    limiter = limiter_of(request)
    stored = await store_or_spool(
        request,
        caller.org_id,
        SOURCE,
        idempotency_key,
        lead_payload(lead, context.clock()),
        request.state.request_id,
        canonical_lead(lead),
        actor=caller.actor,
        # The request is counted in the same threadpool hop as the store, before it.
        before=lambda: limiter.hit("api", caller.limit_key),
    )
    if isinstance(stored, Response):
        return stored
    if not stored.same_request:
        return api_error(422, KEY_REUSED, code=KEY_REUSED_CODE)
    location = {"Location": f"/v1/events/{stored.id}"}
    return JSONResponse({"id": str(stored.id)}, status_code=202, headers=location)


async def checked_lead(
    request: Request, body: bytes, caller: Caller, idempotency_key: str | None
) -> LeadIn | Response:
    """The validated lead, or the 400, 415 or 422 to answer."""
    if idempotency_key is not None and not IDEMPOTENCY_KEY.match(idempotency_key):
        return error_response(400, "Idempotency-Key must be 1-255 printable ASCII characters")
    if media_type(request) != "application/json":
        return error_response(415, "content type must be application/json")
    return await read_lead(request, body, caller.org_id)
