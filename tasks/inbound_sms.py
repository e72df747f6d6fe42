"""Inbound SMS (STOP/START/HELP or a conversation message) and Twilio status callbacks.

The intake route has verified the signature, found the org by the `To` number and stored the
event; an opt-out it has already recorded with the event (intake/inbox.py, record_at_the_door),
so the suppression holds from its 2xx. These handlers run inside process_event's transaction.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from leadline.jsondata import JsonObject, as_object
from leadline.logging import get_logger
from leadline.metrics import MESSAGES_SENT
from models.alert_settings import load_org_messaging
from models.channels import OrgPhoneNumber
from models.crypto import OrgCipher
from models.leads import LeadFields, phone_index, upsert_lead
from models.message_templates import render
from models.messaging import ConversationMessage
from models.normalize import InvalidPhoneNumber, normalize_phone
from models.outbound_messages import NewOutbound, apply_delivery_status, queue_outbound
from models.tables import Lead
from models.webhooks import EventType
from tasks.after_commit import AfterCommit
from tasks.alerts import reply_alert
from tasks.context import get_context
from tasks.domain_events import DomainEvent, publish
from tasks.inbound_events import InboundContext
from tasks.leads import announce_lead
from tasks.optouts import (
    INBOUND_ACTOR,
    Intent,
    OptoutChange,
    carrier_optout_reason,
    classify,
    lift_optout,
    optout_reason,
    record_inbound_optout,
    record_optout,
)
from tasks.sending import add_send

log = get_logger(__name__)
CONVERSATION_TABLE = "conversation_messages"
MAX_BODY_CHARS = 5000


def sms_params(payload: JsonObject) -> dict[str, str]:
    """The form fields of a stored Twilio request (the first value of each)."""
    return {str(key): str(value) for key, value in as_object(payload.get("params")).items()}


def sms_sender(params: dict[str, str]) -> str | None:
    try:
        return normalize_phone(params.get("From", ""), default_region=None)
    except InvalidPhoneNumber:
        return None


def sms_body(params: dict[str, str]) -> str:
    return params.get("Body", "")[:MAX_BODY_CHARS]


def read_sms(payload: JsonObject) -> tuple[str, str] | None:
    """(sender, body) of a stored inbound SMS; None when the sender is no usable number."""
    params = sms_params(payload)
    sender = sms_sender(params)
    return None if sender is None else (sender, sms_body(params))


def is_optout(payload: JsonObject) -> bool:
    """An inbound SMS from a usable number whose text opts out."""
    sms = read_sms(payload)
    return sms is not None and classify(sms[1]) is Intent.OPT_OUT


def record_sms_optout(
    session: Session,
    cipher: OrgCipher,
    payload: JsonObject,
    after_commit: AfterCommit,
    now: datetime,
    requested_at: datetime | None = None,
) -> bool:
    """An inbound SMS that opts out, recorded as a suppression; True if it was one.
    `requested_at`: when it reached us (a spooled SMS arrived before it is stored)."""
    sms = read_sms(payload)
    if sms is None:
        return False
    sender, body = sms
    return record_inbound_optout(session, cipher, sender, body, after_commit, now, requested_at)


def handle_inbound_sms(ctx: InboundContext) -> None:
    params = sms_params(ctx.payload)
    sender = sms_sender(params)
    if sender is None:
        log.info("inbound sms from an unusable number ignored", event_id=str(ctx.event.id))
        return
    body = sms_body(params)
    bidx = phone_index(ctx.cipher, sender)
    lead = ctx.session.scalars(select(Lead).where(Lead.phone_bidx == bidx)).first()
    intent = classify(body)
    if intent is Intent.OPT_OUT:
        opt_out(ctx, bidx, lead, reason=optout_reason(body))
    elif intent is Intent.OPT_IN:
        opt_in(ctx, bidx, lead)
    elif intent is Intent.HELP:
        reply_help(ctx, sender, bidx, lead, params.get("To"))
    else:
        receive_conversation_message(ctx, sender, body, lead, params.get("MessageSid"))


def optout_change(
    ctx: InboundContext, bidx: bytes, lead_id: uuid.UUID | None, reason: str, actor: str
) -> OptoutChange:
    return OptoutChange(
        ctx.session, ctx.cipher, bidx, reason, actor, ctx.after_commit, ctx.now, lead_id
    )


def opt_out(ctx: InboundContext, bidx: bytes, lead: Lead | None, reason: str) -> None:
    if ctx.event.optout_recorded_at is not None:
        return  # the intake recorded it with the event; a later START may have lifted it since
    change = optout_change(ctx, bidx, lead.id if lead else None, reason, INBOUND_ACTOR)
    record_optout(replace(change, requested_at=ctx.event.received_at))


def opt_in(ctx: InboundContext, bidx: bytes, lead: Lead | None) -> None:
    change = optout_change(ctx, bidx, lead.id if lead else None, "keyword", INBOUND_ACTOR)
    lift_optout(change, requested_at=ctx.event.received_at)


def reply_help(
    ctx: InboundContext, sender: str, bidx: bytes, lead: Lead | None, to_number: str | None
) -> None:
    settings = get_context().settings
    org = load_org_messaging(ctx.session, ctx.org_id, settings.twilio_from_number)
    values = {
        "org": org.org_name,
        "program": org.program,
        "contact": org.contact,
        "frequency": org.frequency,
    }
    message = NewOutbound(
        channel="sms",
        purpose="help_reply",
        idempotency_key=f"inbound:{ctx.event.id}:help",
        recipient=sender,
        recipient_bidx=bidx,
        body=render(org.template("help_reply"), values),
        sender=reply_sender(ctx, to_number) or org.sender,
        lead_id=lead.id if lead else None,
        reply_to_at=ctx.event.received_at,
    )
    for row in queue_outbound(ctx.session, ctx.cipher, [message], ctx.now):
        add_send(ctx.after_commit, row.channel, ctx.org_id, row.id)


def reply_sender(ctx: InboundContext, to_number: str | None) -> str | None:
    """Answer from the number that was texted, when it is one of the org's numbers."""
    if not to_number:
        return None
    query = select(OrgPhoneNumber.number).where(OrgPhoneNumber.number == to_number)
    return ctx.session.scalar(query)


def receive_conversation_message(
    ctx: InboundContext, sender: str, body: str, lead: Lead | None, sid: str | None
) -> None:
    created = lead is None
    if lead is None:
        lead = upsert_lead(
            ctx.session, ctx.cipher, LeadFields(phone=sender, message=body, source="sms")
        ).lead
    conversation_id = store_conversation_message(ctx, lead.id, body, sid)
    if conversation_id is None:
        return
    if created:
        announce_lead(ctx, lead, True, body)
    else:
        reply_alert(ctx.session, ctx.cipher, lead, conversation_id, body, ctx.after_commit, ctx.now)
    data = {"lead_id": str(lead.id), "message_id": str(conversation_id), "channel": "sms"}
    publish(
        DomainEvent(
            ctx.session, ctx.cipher, EventType.MESSAGE_RECEIVED, data, ctx.after_commit, ctx.now
        )
    )


def store_conversation_message(
    ctx: InboundContext, lead_id: uuid.UUID, body: str, sid: str | None
) -> uuid.UUID | None:
    """The message, encrypted; None if this provider message id was already stored."""
    row_id = uuid.uuid4()
    inserted: uuid.UUID | None = ctx.session.execute(
        insert(ConversationMessage)
        .values(
            id=row_id,
            org_id=ctx.org_id,
            lead_id=lead_id,
            direction="inbound",
            channel="sms",
            body_ct=ctx.cipher.encrypt_text(body, CONVERSATION_TABLE, "body_ct", row_id),
            provider_sid=(sid or None),
            created_at=ctx.now,
        )
        .on_conflict_do_nothing(
            index_elements=["org_id", "provider_sid"],
            index_where=ConversationMessage.provider_sid.is_not(None),
        )
        .returning(ConversationMessage.id)
    ).scalar_one_or_none()
    return inserted


def handle_status_callback(ctx: InboundContext) -> None:
    params = sms_params(ctx.payload)
    sid = params.get("MessageSid") or params.get("SmsSid")
    status = params.get("MessageStatus") or params.get("SmsStatus")
    if not sid or not status:
        return
    error_code = params.get("ErrorCode") or None
    row = apply_delivery_status(ctx.session, sid, status, error_code, ctx.now)
    if row is None:
        return
    MESSAGES_SENT.labels(channel="sms", state=row.state).inc()
    reason = carrier_optout_reason(error_code)
    if reason is not None:
        record_optout(optout_change(ctx, row.recipient_bidx, row.lead_id, reason, "twilio"))
    data = {
        "message_id": str(row.id),
        "lead_id": str(row.lead_id) if row.lead_id else None,
        "state": row.state,
        "error_code": error_code,
        "channel": "sms",
    }
    publish(
        DomainEvent(
            ctx.session, ctx.cipher, EventType.MESSAGE_STATUS, data, ctx.after_commit, ctx.now
        )
    )
