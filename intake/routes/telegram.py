"""POST /hooks/telegram/{org_id}: the bot's webhook for one org, verified by the secret token.

Register it with setWebhook(url=<public url>/hooks/telegram/<org id>,
secret_token=TELEGRAM_SECRET_TOKEN). Telegram holds back later updates while one fails, so a
verified update for an unknown org is answered 200 and dropped.
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
    reject,
    unsupported_type,
)
from intake.verify import parse_json_object, verify_telegram
from leadline.errors import VerificationError

router = APIRouter()
SOURCE = "telegram"


def parse_org(raw: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(raw)
    except ValueError:
        return None


@router.post("/hooks/telegram/{org}")
async def telegram_webhook(request: Request, org: str) -> Response:
    if media_type(request) != "application/json":
        return unsupported_type()
    secret = configured(context_of(request).settings.telegram_secret_token)
    header = request.headers.get("x-telegram-bot-api-secret-token")
    body = await request.body()
    if secret is None or not header:
        return await reject(
            request, SOURCE, "not_configured" if secret is None else "missing_signature"
        )
    try:
        verify_telegram(secret, header)
        update = parse_json_object(body)
    except VerificationError:
        return await reject(request, SOURCE, "bad_signature")
    except ValueError:
        return malformed()
    update_id = update.get("update_id")
    if not isinstance(update_id, int) or isinstance(update_id, bool):
        return malformed()
    named = parse_org(org)
    org_id = None if named is None else await open_org(request, named)
    if isinstance(org_id, Response):
        return org_id
    if org_id is None:
        return drop(request, SOURCE, "unknown_org")
    refused = await accept(request, org_id, SOURCE, str(update_id), update)
    return refused or JSONResponse({"ok": True})
