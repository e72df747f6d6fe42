"""POST /hooks/twilio/sms and /hooks/twilio/status: verified, routed, stored, enqueued.

The signature covers LEADLINE_PUBLIC_URL + path + query (so it holds behind a proxy) and every
form value, repeated ones included; JSON bodies are covered by the `bodySHA256` query value.
Inbound SMS are routed by `To` (a number added with `leadline number add`); status callbacks
by an `org` query value in the callback URL (signed with it) or else by `From`. An unknown
number is 404: Twilio does not retry, and the sender is verified, so nothing leaks.
An inbound opt-out (STOP and the rest) is recorded as a suppression in the transaction that
stores the event, before the 200 (intake/inbox.py), so it holds whatever Redis does.
"""

from __future__ import annotations

import re
import uuid

from fastapi import APIRouter, Request
from starlette.responses import Response

from intake.hooks import (
    accept,
    configured,
    context_of,
    malformed,
    media_type,
    open_org,
    reject,
    remembered,
    routed_in_maintenance,
    unsupported_type,
)
from intake.responses import error_response
from intake.verify import parse_json_object, verify_twilio
from leadline.errors import VerificationError
from leadline.jsondata import JsonObject
from models.normalize import InvalidPhoneNumber, normalize_phone
from models.routing import org_for_number

router = APIRouter()
CONTENT_TYPES = {"application/x-www-form-urlencoded", "application/json"}
SID = re.compile(r"^[A-Za-z0-9]{10,64}$")
STATUS = re.compile(r"^[a-z_-]{1,32}$")
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'


def public_url(request: Request) -> str:
    base = context_of(request).settings.leadline_public_url.rstrip("/")
    query = request.url.query
    return f"{base}{request.url.path}" + (f"?{query}" if query else "")


def external_id(source: str, params: JsonObject) -> str | None:
    sid = params.get("MessageSid") or params.get("SmsSid")
    if not isinstance(sid, str) or not SID.match(sid):
        return None
    if source == "twilio_sms":
        return sid
    status = params.get("MessageStatus") or params.get("SmsStatus")
    if not isinstance(status, str) or not STATUS.match(status):
        return None
    return f"{sid}:{status}"


def business_number(source: str, params: JsonObject) -> str | None:
    raw = params.get("To" if source == "twilio_sms" else "From")
    if not isinstance(raw, str):
        return None
    try:
        return normalize_phone(raw, default_region=None)
    except InvalidPhoneNumber:
        return None


async def route(request: Request, source: str, params: JsonObject) -> uuid.UUID | Response | None:
    """The org a verified request is for; None if unknown, 503 when the database is down and
    the routing is not in the spool's cache."""
    context = context_of(request)
    named = request.query_params.get("org") if source == "twilio_status" else None
    if named is not None:
        try:
            org_id = uuid.UUID(named)
        except ValueError:
            return None
        return await open_org(request, org_id)
    number = business_number(source, params)
    if number is None:
        return None
    return await remembered(
        request,
        "number",
        number,
        lambda: routed_in_maintenance(
            context, "number", number, lambda session: org_for_number(session, number)
        ),
    )


async def verified_params(request: Request, source: str) -> JsonObject | Response:
    token = configured(context_of(request).settings.twilio_auth_token)
    signature = request.headers.get("x-twilio-signature")
    body = await request.body()
    if token is None or not signature:
        return await reject(
            request, source, "not_configured" if token is None else "missing_signature"
        )
    try:
        form = verify_twilio(token, public_url(request), body, media_type(request), signature)
    except VerificationError:
        return await reject(request, source, "bad_signature")
    if form is not None:
        return dict(form.first_values())
    try:
        return parse_json_object(body)
    except ValueError:
        return malformed()


async def receive(request: Request, source: str) -> Response | None:
    """Verify, route, store. Returns an error response, or None when the event was taken."""
    if media_type(request) not in CONTENT_TYPES:
        return unsupported_type()
    params = await verified_params(request, source)
    if isinstance(params, Response):
        return params
    event_id = external_id(source, params)
    if event_id is None:
        return malformed()
    org_id = await route(request, source, params)
    if isinstance(org_id, Response):
        return org_id
    if org_id is None:
        return error_response(404, "unknown number")
    return await accept(request, org_id, source, event_id, {"params": params})


@router.post("/hooks/twilio/sms")
async def twilio_sms(request: Request) -> Response:
    refused = await receive(request, "twilio_sms")
    return refused or Response(EMPTY_TWIML, media_type="text/xml")


@router.post("/hooks/twilio/status")
async def twilio_status(request: Request) -> Response:
    refused = await receive(request, "twilio_status")
    return refused or Response(status_code=204)
