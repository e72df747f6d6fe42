"""GET /hooks/meta (subscription handshake) and POST /hooks/meta (X-Hub-Signature-256).

One app-wide webhook for Messenger, Instagram and WhatsApp: each message is routed by the
page / Instagram / WhatsApp account id it was sent to (`leadline meta link ORG ACCOUNT_ID`)
and stored as its own event, deduplicated by message id. Meta retries failed deliveries and
eventually disables the app's webhook, so messages for unknown accounts are dropped with 200.
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from intake.hooks import (
    accept,
    configured,
    context_of,
    reject,
    remembered,
    routed_in_maintenance,
    verified_json,
    warn_throttled,
)
from intake.verify import verify_meta, verify_meta_handshake
from leadline.errors import VerificationError
from leadline.metrics import EVENTS_REJECTED
from models.routing import org_for_meta_account
from tasks.meta import MetaMessage, split_meta_messages

router = APIRouter()
SOURCE = "meta"


@router.get("/hooks/meta")
async def meta_handshake(request: Request) -> Response:
    token = configured(context_of(request).settings.meta_verify_token)
    if token is None:
        return await reject(request, SOURCE, "not_configured")
    try:
        challenge = verify_meta_handshake(token, dict(request.query_params))
    except VerificationError:
        return await reject(request, SOURCE, "bad_verify_token")
    return PlainTextResponse(challenge)


async def org_for(request: Request, message: MetaMessage) -> uuid.UUID | Response | None:
    accounts = ",".join(sorted(message.account_ids))
    return await remembered(
        request,
        "meta_accounts",
        accounts,
        lambda: routed_in_maintenance(
            context_of(request),
            "meta_accounts",
            accounts,
            lambda session: org_for_meta_account(session, list(message.account_ids)),
        ),
    )


@router.post("/hooks/meta")
async def meta_webhook(request: Request) -> Response:
    secret = context_of(request).settings.meta_app_secret
    body = await verified_json(request, SOURCE, secret, "x-hub-signature-256", verify_meta)
    if isinstance(body, Response):
        return body
    for message in split_meta_messages(body):
        org_id = await org_for(request, message)
        if isinstance(org_id, Response):
            return org_id
        if org_id is None:
            EVENTS_REJECTED.labels(source=SOURCE, reason="unknown_org").inc()
            warn_throttled(request, "verified event dropped", SOURCE, "unknown_org")
            continue
        refused = await accept(request, org_id, SOURCE, message.external_id, message.payload)
        if refused is not None:
            return refused
    return JSONResponse({"received": True})
