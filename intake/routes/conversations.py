"""GET /v1/leads/{id}/messages (the conversation, oldest first, with delivery states) and
POST /v1/leads/{id}/messages (a reply through the outbox, by SMS or on the lead's Instagram,
Messenger or WhatsApp conversation; 409 with nothing queued when it may not be sent:
`opted_out`, `no_phone`, `no_conversation`, `not_connected`, `template_required`)."""

from __future__ import annotations

import uuid
from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Header, Request
from starlette.responses import JSONResponse

from intake.api_errors import ApiError, not_found
from intake.api_schemas import MessageOut, MessagePage, ReplyIn, ReplyOut
from intake.pagination import DEFAULT_LIMIT, Cursor, Limit, decode_cursor, next_cursor
from intake.principals import CurrentPrincipal
from intake.routes.leads import IDEMPOTENCY_KEY
from intake.tenant_calls import TenantCall, in_tenant
from models.conversations import ConversationEntry, conversation
from models.tables import Lead
from tasks.replies import (
    NoConversationError,
    NoPhoneError,
    NotConnectedError,
    OptedOutError,
    Reply,
    TemplateRequiredError,
    queue_reply,
)

router = APIRouter(tags=["conversations"])
IdempotencyKey = Annotated[
    str | None,
    Header(max_length=255, description="Retries with the same key send one message."),
]


@router.get("/v1/leads/{lead_id}/messages", response_model=MessagePage)
async def messages(
    request: Request,
    principal: CurrentPrincipal,
    lead_id: uuid.UUID,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> MessagePage:
    position = decode_cursor(cursor)

    def read(call: TenantCall) -> list[ConversationEntry] | None:
        if call.session.get(Lead, lead_id) is None:
            return None
        return conversation(call.session, call.cipher, lead_id, position, limit)

    rows = await in_tenant(request, principal, read)
    if rows is None:
        raise not_found()
    return MessagePage(
        data=[MessageOut(**asdict(row)) for row in rows], next_cursor=next_cursor(rows, limit)
    )


@router.post(
    "/v1/leads/{lead_id}/messages",
    status_code=202,
    response_model=ReplyOut,
    responses={
        409: {
            "description": "Nothing queued: `opted_out` (the recipient opted out on that "
            "channel), `no_phone`, `no_conversation` (the lead never wrote on that channel), "
            "`not_connected` (no active connection for the account the lead wrote to), "
            "`template_required` (WhatsApp, 24 hours after the customer's last message)"
        }
    },
)
async def reply(
    request: Request,
    principal: CurrentPrincipal,
    lead_id: uuid.UUID,
    body: ReplyIn,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    if idempotency_key is not None and not IDEMPOTENCY_KEY.match(idempotency_key):
        raise ApiError(400, "Idempotency-Key must be 1-255 printable ASCII characters")
    key = idempotency_key or uuid.uuid4().hex

    def send(call: TenantCall) -> ReplyOut:
        sender = call.context.settings.twilio_from_number
        queued = queue_reply(
            call.session,
            call.cipher,
            Reply(lead_id, body.body, key, body.channel),
            sender,
            call.actor,
            call.after_commit,
            call.now,
        )
        return ReplyOut(id=queued.id, state=queued.state)

    try:
        out = await in_tenant(request, principal, send)
    except OptedOutError:
        message = "the lead's number opted out" if body.channel == "sms" else "the lead opted out"
        raise ApiError(409, message, code="opted_out") from None
    except NoPhoneError:
        raise ApiError(409, "the lead has no phone number", code="no_phone") from None
    except NoConversationError:
        message = f"the lead has no {body.channel} conversation"
        raise ApiError(409, message, code="no_conversation") from None
    except NotConnectedError:
        message = f"no active {body.channel} connection serves the lead's conversation"
        raise ApiError(409, message, code="not_connected") from None
    except TemplateRequiredError:
        message = "more than 24 hours since the customer's last WhatsApp message"
        raise ApiError(409, message, code="template_required") from None
    return JSONResponse(out.model_dump(mode="json"), status_code=202)
