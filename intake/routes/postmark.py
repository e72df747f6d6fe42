"""POST /hooks/postmark: Postmark's bounce, spam-complaint and subscription-change webhooks.

Postmark protects its webhooks with HTTP basic auth in the URL it is given
(https://USER:PASSWORD@<public url>/hooks/postmark, over TLS); both halves are checked in
constant time (intake/verify.py) against POSTMARK_WEBHOOK_USER and _PASSWORD. Missing or
wrong credentials → 401 and nothing stored. The org comes from the Metadata every email
Leadline sends carries (`leadline_org`); Postmark retries what is not answered 2xx, so a
verified webhook of another kind, or for no known org, is answered 200 and dropped.
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse, Response

from intake.hooks import (
    accept,
    configured,
    context_of,
    drop,
    malformed,
    media_type,
    open_org,
    unsupported_type,
    warn_throttled,
)
from intake.limits import count_auth_failure
from intake.rejections import label_rejection
from intake.responses import error_response
from intake.verify import parse_json_object, verify_basic_auth
from leadline.errors import VerificationError
from leadline.jsondata import JsonObject, as_object, text_of
from tasks.email_events import RECORD_TYPES, kept_fields

router = APIRouter()
SOURCE = "postmark"


async def refuse(request: Request, reason: str) -> Response:
    """401 (429 once this address has failed too often) with a basic-auth challenge."""
    label_rejection(request, reason)
    await count_auth_failure(request, "postmark")
    warn_throttled(request, "inbound request refused", SOURCE, reason)
    response = error_response(401, "authentication required")
    response.headers["WWW-Authenticate"] = 'Basic realm="leadline", charset="UTF-8"'
    return response


@router.post("/hooks/postmark")
async def postmark_webhook(request: Request) -> Response:
    settings = context_of(request).settings
    user = configured(settings.postmark_webhook_user)
    password = configured(settings.postmark_webhook_password)
    header = request.headers.get("authorization")
    if user is None or password is None or not header:
        reason = "not_configured" if user is None or password is None else "missing_signature"
        return await refuse(request, reason)
    try:
        verify_basic_auth(user, password, header)
    except VerificationError:
        return await refuse(request, "bad_signature")
    if media_type(request) != "application/json":
        return unsupported_type()
    try:
        payload = parse_json_object(await request.body())
    except ValueError:
        return malformed()
    return await take(request, payload)


async def take(request: Request, payload: JsonObject) -> Response:
    record_type = text_of(payload, "RecordType")
    if record_type not in RECORD_TYPES:
        return drop(request, SOURCE, "unhandled_type")
    external_id = event_id(record_type, payload)
    named = org_named(payload)
    if external_id is None or named is None:
        return drop(request, SOURCE, "unknown_org" if named is None else "no_event_id")
    org_id = await open_org(request, named)
    if isinstance(org_id, Response):
        return org_id
    if org_id is None:
        return drop(request, SOURCE, "unknown_org")
    refused = await accept(request, org_id, SOURCE, external_id, kept_fields(payload))
    return refused or JSONResponse({"received": True})


def event_id(record_type: str, payload: JsonObject) -> str | None:
    """Postmark's own id (bounces and complaints), or the message and time of a change."""
    if record_type != "SubscriptionChange":
        raw = payload.get("ID")
        valid = isinstance(raw, int) and not isinstance(raw, bool)
        return f"{record_type}:{raw}" if valid else None
    message, changed = text_of(payload, "MessageID"), text_of(payload, "ChangedAt")
    if not message or not changed or len(message) + len(changed) > 200:
        return None
    return f"{record_type}:{message}:{changed}"


def org_named(payload: JsonObject) -> uuid.UUID | None:
    raw = text_of(as_object(payload.get("Metadata")), "leadline_org")
    try:
        return uuid.UUID(raw) if raw else None
    except ValueError:
        return None
