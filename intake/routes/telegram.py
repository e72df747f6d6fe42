"""POST /hooks/telegram/{org_id}: the bot's webhook for one org, verified by the secret token.

Register it with setWebhook(url=<public url>/hooks/telegram/<org id>,
secret_token=TELEGRAM_SECRET_TOKEN). Telegram holds back later updates while one fails, so a
verified update for an unknown org is answered 200 and dropped.
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse, Response

from intake.hooks import accept, context_of, drop, malformed, open_org, verified_json
from intake.verify import verify_telegram

router = APIRouter()
SOURCE = "telegram"


def parse_org(raw: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(raw)
    except ValueError:
        return None


@router.post("/hooks/telegram/{org}")
async def telegram_webhook(request: Request, org: str) -> Response:
    update = await verified_json(
        request,
        SOURCE,
        context_of(request).settings.telegram_secret_token,
        "x-telegram-bot-api-secret-token",
        lambda secret, _body, header: verify_telegram(secret, header),
    )
    if isinstance(update, Response):
        return update
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
