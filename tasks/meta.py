"""Meta (Messenger, Instagram, WhatsApp) messages → leads keyed by the platform user id.

The intake splits each verified webhook body into one inbound event per message (external
id = the message id), each payload `{"object": ..., "entry": <that entry with one message>,
"position": <its index among the body's messages>}`. The handler upserts the lead by a blind
index of `platform:user id` and stores the text encrypted as the lead's first message.

Workers process one person's messages concurrently, in any order, so the first message is the
one sent earliest: Meta's send time (milliseconds; seconds for WhatsApp), ties within one body
broken by the order of the body.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session

from leadline.jsondata import JsonObject, as_list, as_object
from models.crypto import OrgCipher
from models.leads import LeadFields, upsert_lead
from models.messaging import ConversationMessage
from models.normalize import InvalidPhoneNumber, normalize_phone
from models.tables import Lead
from tasks.after_commit import AfterCommit
from tasks.inbound_events import InboundContext
from tasks.leads import announce_lead
from tasks.optouts import (
    Intent,
    OptoutChange,
    PlatformSender,
    classify,
    lift_optout,
    optout_reason,
    record_optout,
    record_platform_optout,
)

PLATFORMS = {"page": "messenger", "instagram": "instagram", "whatsapp_business_account": "whatsapp"}
MAX_ID_LENGTH = 255
MAX_TIMESTAMP_DIGITS = 16
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# A body's position breaks ties between equal send times as microseconds added to the time;
# kept under a millisecond so it never reorders messages whose send times differ.
MAX_POSITION = 999
CONVERSATION_TABLE = "conversation_messages"


@dataclass(frozen=True)
class MetaMessage:
    """One message found in a webhook body, with the account ids that route it to an org."""

    account_ids: tuple[str, ...]
    external_id: str
    payload: JsonObject


@dataclass(frozen=True)
class PlatformMessage:
    platform: str
    user_id: str
    text: str | None
    name: str | None
    sent_at: datetime | None
    # The business account it was sent to: the page or Instagram account, the WhatsApp
    # phone number id (what a reply is sent from).
    account_id: str | None = None


def as_id(value: object) -> str | None:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if isinstance(value, str) and 0 < len(value) <= MAX_ID_LENGTH:
        return value
    return None


def split_meta_messages(body: JsonObject) -> list[MetaMessage]:
    """Every incoming user message in a verified body; echoes, reads and statuses are left out."""
    kind = body.get("object")
    if kind not in PLATFORMS:
        return []
    found: list[MetaMessage] = []
    for entry in map(as_object, as_list(body.get("entry"))):
        split = whatsapp_messages if kind == "whatsapp_business_account" else messaging_messages
        found.extend(split(str(kind), entry))
    return [replace(m, payload={**m.payload, "position": i}) for i, m in enumerate(found)]


def messaging_messages(kind: str, entry: JsonObject) -> Iterator[MetaMessage]:
    account = as_id(entry.get("id"))
    for event in map(as_object, as_list(entry.get("messaging"))):
        message = as_object(event.get("message"))
        mid, sender = as_id(message.get("mid")), as_id(as_object(event.get("sender")).get("id"))
        if account and mid and sender and not message.get("is_echo"):
            single = {**entry, "messaging": [event]}
            yield MetaMessage((account,), mid, {"object": kind, "entry": single})


def whatsapp_messages(kind: str, entry: JsonObject) -> Iterator[MetaMessage]:
    for change in map(as_object, as_list(entry.get("changes"))):
        value = as_object(change.get("value"))
        phone_number_id = as_id(as_object(value.get("metadata")).get("phone_number_id"))
        accounts = tuple(a for a in (as_id(entry.get("id")), phone_number_id) if a)
        for message in map(as_object, as_list(value.get("messages"))):
            mid, sender = as_id(message.get("id")), as_id(message.get("from"))
            if not (accounts and mid and sender):
                continue
            contacts = [
                c for c in as_list(value.get("contacts")) if as_object(c).get("wa_id") == sender
            ]
            single_value = {**value, "messages": [message], "contacts": contacts[:1]}
            single_value.pop("statuses", None)
            single = {**entry, "changes": [{"field": "messages", "value": single_value}]}
            yield MetaMessage(accounts, mid, {"object": kind, "entry": single})


def sent_at(value: object, per_second: int) -> datetime | None:
    """A send time given as a count of 1/per_second seconds since the epoch, if it is one."""
    if isinstance(value, str) and is_digits(value) and len(value) <= MAX_TIMESTAMP_DIGITS:
        value = int(value)  # WhatsApp sends a string
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        return None
    try:
        return EPOCH + timedelta(microseconds=value * (1_000_000 // per_second))
    except OverflowError:
        return None


def is_digits(value: str) -> bool:
    return value.isascii() and value.isdigit()


def message_order(payload: JsonObject, message: PlatformMessage) -> datetime | None:
    """When the message was sent, nudged by its position in the body so that equal times
    keep the body's order; None when Meta gave no usable time."""
    if message.sent_at is None:
        return None
    position = payload.get("position")
    if not isinstance(position, int) or isinstance(position, bool) or position < 0:
        position = 0  # stored before positions were recorded
    return message.sent_at + timedelta(microseconds=min(position, MAX_POSITION))


def read_platform_message(payload: JsonObject) -> PlatformMessage | None:
    """The one message in a stored payload, in a platform-neutral shape."""
    platform = PLATFORMS.get(str(payload.get("object")))
    entry = as_object(payload.get("entry"))
    if platform == "whatsapp":
        return read_whatsapp(entry)
    if platform is None:
        return None
    event = as_object((as_list(entry.get("messaging")) or [None])[0])
    sender = as_id(as_object(event.get("sender")).get("id"))
    text = as_object(event.get("message")).get("text")
    if sender is None:
        return None
    return PlatformMessage(
        platform,
        sender,
        text if isinstance(text, str) else None,
        None,
        sent_at(event.get("timestamp"), 1000),
        as_id(as_object(event.get("recipient")).get("id")) or as_id(entry.get("id")),
    )


def read_whatsapp(entry: JsonObject) -> PlatformMessage | None:
    change = as_object((as_list(entry.get("changes")) or [None])[0])
    value = as_object(change.get("value"))
    message = as_object((as_list(value.get("messages")) or [None])[0])
    sender = as_id(message.get("from"))
    if sender is None:
        return None
    text = as_object(message.get("text")).get("body")
    contact = as_object((as_list(value.get("contacts")) or [None])[0])
    name = as_object(contact.get("profile")).get("name")
    return PlatformMessage(
        "whatsapp",
        sender,
        text if isinstance(text, str) else None,
        name if isinstance(name, str) else None,
        sent_at(message.get("timestamp"), 1),
        as_id(as_object(value.get("metadata")).get("phone_number_id")),
    )


def platform_sender(message: PlatformMessage) -> PlatformSender:
    """WhatsApp's sender id is the person's phone number in E.164 without the +."""
    phone = None
    if message.platform == "whatsapp" and message.user_id.isdigit():
        try:
            phone = normalize_phone(f"+{message.user_id}", default_region=None)
        except InvalidPhoneNumber:
            phone = None
    return PlatformSender(message.platform, message.user_id, phone)


def is_meta_optout(payload: JsonObject) -> bool:
    """A stored Meta message whose text opts out."""
    message = read_platform_message(payload)
    return message is not None and classify(message.text or "") is Intent.OPT_OUT


def record_meta_optout(
    session: Session,
    cipher: OrgCipher,
    payload: JsonObject,
    after_commit: AfterCommit,
    now: datetime,
    requested_at: datetime | None = None,
) -> bool:
    """A stored Meta message that opts out, recorded as suppressions; True if it was one."""
    message = read_platform_message(payload)
    if message is None or message.text is None:
        return False
    sender = platform_sender(message)
    return record_platform_optout(
        session, cipher, sender, message.text, after_commit, now, requested_at
    )


def handle_meta_message(ctx: InboundContext) -> None:
    message = read_platform_message(ctx.payload)
    if message is None:
        return
    if message.text is not None and classify(message.text) is Intent.OPT_OUT:
        # Not a lead's message: an opt-out, recorded at the door or, for an event stored
        # before that existed, now (as of when it reached us).
        if ctx.event.optout_recorded_at is None:
            sender = platform_sender(message)
            record_platform_optout(
                ctx.session,
                ctx.cipher,
                sender,
                message.text,
                ctx.after_commit,
                ctx.now,
                ctx.event.received_at,
            )
        return
    fields = LeadFields(
        name=message.name,
        message=message.text,
        message_at=message_order(ctx.payload, message),
        platform_user=f"{message.platform}:{message.user_id}",
        platform_account=message.account_id,
        platform_inbound_at=message.sent_at or ctx.event.received_at,
        source=message.platform,
    )
    result = upsert_lead(ctx.session, ctx.cipher, fields)
    if message.text is not None:
        add_to_conversation(ctx, result.lead, message)
        record_channel_optout(ctx, result.lead, message.platform, message.text)
    announce_lead(ctx, result.lead, result.created, message.text)


def add_to_conversation(ctx: InboundContext, lead: Lead, message: PlatformMessage) -> None:
    """The message in the lead's conversation (GET /v1/leads/{id}/messages), encrypted, at
    Meta's send time. The inbound event is unique per message id, so this runs once."""
    assert message.text is not None
    row_id = uuid.uuid4()
    ctx.session.add(
        ConversationMessage(
            id=row_id,
            org_id=ctx.org_id,
            lead_id=lead.id,
            direction="inbound",
            channel=message.platform,
            body_ct=ctx.cipher.encrypt(
                message.text.encode(), CONVERSATION_TABLE, "body_ct", row_id
            ),
            created_at=message_order(ctx.payload, message) or ctx.now,
        )
    )


def record_channel_optout(ctx: InboundContext, lead: Lead, platform: str, text: str) -> None:
    """STOP (or a revocation in free text) on Instagram, Messenger or WhatsApp suppresses
    that conversation, keyed by its platform blind index: the other channels are unaffected.
    START lifts it, as for SMS."""
    intent = classify(text)
    if intent not in (Intent.OPT_OUT, Intent.OPT_IN) or lead.platform_bidx is None:
        return
    change = OptoutChange(
        ctx.session,
        ctx.cipher,
        lead.platform_bidx,
        optout_reason(text) if intent is Intent.OPT_OUT else "keyword",
        f"{platform}:inbound",
        ctx.after_commit,
        ctx.now,
        lead_id=lead.id,
        requested_at=ctx.event.received_at,
        channel=platform,
    )
    if intent is Intent.OPT_OUT:
        record_optout(change)
    else:
        lift_optout(change, requested_at=ctx.event.received_at)
