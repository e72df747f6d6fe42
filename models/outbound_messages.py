"""Outbound messages: queue (encrypted), claim with the opt-out check, record the outcome.

The claim protocol is what makes SMS at most once:
1. In one transaction: lock the row (SKIP LOCKED), check it is `queued` and due, check the
   suppression list (or the Telegram chat link), then mark it `sending` and commit.
2. Check the suppression list again, record `provider_call_at` (fenced by the attempt
   number) and commit, then call the provider outside any transaction.
3. Record the outcome, fenced by the attempt number taken in step 1.

A delivery that finds a row still `sending` without `provider_call_at` knows the provider was
never called (the worker died between 1 and 2; a late step 2 of that worker fails its fence), so
the row goes back to `queued` and is claimed again, suppression check included. With
`provider_call_at` it cannot know whether the provider got it, so the row becomes `unknown`
and is only resolved by reconciliation (tasks/reconcile.py) or an operator. If the worker that
really holds the row then records a definite outcome, that outcome wins (same attempt number).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from leadline.errors import LeadlineError, NotFoundError
from models.audit import record_audit
from models.cache import Cache
from models.channels import OrgPhoneNumber, TelegramChat
from models.connections import Connection, ConnectionStatus, connection_token
from models.crypto import OrgCipher
from models.messaging import SOCIAL_CHANNELS, OutboundMessage
from models.quiet_hours import (
    OWN_RECIPIENT_PURPOSES,
    QuietWindow,
    next_open,
    org_window,
    quiet_hours_apply,
    recipient_zones,
)

TABLE = "outbound_messages"
INSERT_CHUNK = 500
# Alerts go to the business's own numbers and chats: for them a duplicate is better than a
# silent loss, so an unknown alert may be sent again. Messages to leads stay at most once.
AT_LEAST_ONCE_PURPOSES = OWN_RECIPIENT_PURPOSES
# Channels whose recipients are checked against the suppression list (by blind index).
SUPPRESSIBLE_CHANNELS = frozenset({"sms", "email"})
# `unknown` codes reconciliation has given up on: only an operator decides these.
FOR_OPERATORS = frozenset({"not_at_provider", "ambiguous"})
UNDECIDED_FOR_OPERATORS = timedelta(hours=1)
# Twilio's answers for 10DLC trouble: carrier filtering, and a number not registered to a
# campaign. Both are failures operators must act on (tasks/attention.py).
CARRIER_REJECTIONS = {"30007": "carrier filtering", "30034": "unregistered number"}
CARRIER_REJECTIONS_SHOWN = timedelta(days=7)
RELEASE_BATCH = 1000


@dataclass(frozen=True)
class NewOutbound:
    """A message to queue. `recipient` is an E.164 number (sms), a chat id (telegram), an
    address (email, whose `body` is an encoded models.email_content.EmailContent) or the
    person's platform id (instagram, messenger, whatsapp: sent through `connection_id`)."""

    channel: str
    purpose: str
    idempotency_key: str
    recipient: str
    recipient_bidx: bytes
    body: str
    sender: str | None = None
    lead_id: uuid.UUID | None = None
    campaign_id: uuid.UUID | None = None
    telegram_chat_id: uuid.UUID | None = None
    connection_id: uuid.UUID | None = None
    next_attempt_at: datetime | None = None
    state: str = "queued"
    last_error_code: str | None = None
    # When the lead's inbound message this answers arrived (models/quiet_hours.py).
    reply_to_at: datetime | None = None


@dataclass(frozen=True)
class QueuedOutbound:
    id: uuid.UUID
    channel: str
    state: str
    next_attempt_at: datetime


@dataclass(frozen=True)
class ClaimedMessage:
    """A row this worker now holds in `sending`, with its plaintext for the provider call."""

    id: uuid.UUID
    org_id: uuid.UUID
    channel: str
    recipient: str
    body: str
    sender: str | None
    attempt: int
    recipient_bidx: bytes
    lead_id: uuid.UUID | None
    telegram_chat_id: uuid.UUID | None
    # The sending number's own Messaging Service, if it has one (else the global setting).
    messaging_service: str | None = None
    connection: ClaimedConnection | None = None


@dataclass(frozen=True)
class ClaimedConnection:
    """The account a social message goes out as, and its token (kept out of repr)."""

    id: uuid.UUID
    account_id: str
    token: str = field(repr=False)


@dataclass(frozen=True)
class MessageClaim:
    """What the claim step decided: claimed, blocked, held (quiet hours), failed (no quiet
    window at all), unknown, not_due or skipped."""

    outcome: str
    channel: str = ""
    message: ClaimedMessage | None = None
    due_at: datetime | None = None


@dataclass(frozen=True)
class MessageOutcome:
    """The provider's answer, as a state to move the row to."""

    state: str
    code: str | None = None
    provider_sid: str | None = None
    next_attempt_at: datetime | None = None


def _row_values(cipher: OrgCipher, message: NewOutbound, now: datetime) -> dict[str, object]:
    row_id = uuid.uuid4()
    return {
        "id": row_id,
        "org_id": cipher.org_id,
        "channel": message.channel,
        "purpose": message.purpose,
        "idempotency_key": message.idempotency_key,
        "recipient_ct": cipher.encrypt(message.recipient.encode(), TABLE, "recipient_ct", row_id),
        "recipient_bidx": message.recipient_bidx,
        "body_ct": cipher.encrypt(message.body.encode(), TABLE, "body_ct", row_id),
        "sender": message.sender,
        "lead_id": message.lead_id,
        "campaign_id": message.campaign_id,
        "telegram_chat_id": message.telegram_chat_id,
        "connection_id": message.connection_id,
        "state": message.state,
        "attempts": 0,
        "last_error_code": message.last_error_code,
        "next_attempt_at": message.next_attempt_at or now,
        "reply_to_at": message.reply_to_at,
        "created_at": now,
        "updated_at": now,
    }


def queue_outbound(
    session: Session, cipher: OrgCipher, messages: Sequence[NewOutbound], now: datetime
) -> list[QueuedOutbound]:
    """Insert messages; those whose idempotency key exists are skipped. Returns the new rows."""
    queued: list[QueuedOutbound] = []
    for start in range(0, len(messages), INSERT_CHUNK):
        chunk = [_row_values(cipher, m, now) for m in messages[start : start + INSERT_CHUNK]]
        rows = session.execute(
            insert(OutboundMessage)
            .values(chunk)
            .on_conflict_do_nothing(constraint="uq_outbound_messages_key")
            .returning(
                OutboundMessage.id,
                OutboundMessage.channel,
                OutboundMessage.state,
                OutboundMessage.next_attempt_at,
            )
        ).all()
        queued.extend(QueuedOutbound(r.id, r.channel, r.state, r.next_attempt_at) for r in rows)
    return queued


# Whether an org's recipient (blind index) opted out: tasks.optouts.is_opted_out.
OptoutCheck = Callable[[Session, uuid.UUID, bytes], bool]


def claim_outbound(
    session: Session,
    cipher: OrgCipher,
    message_id: uuid.UUID,
    now: datetime,
    opted_out: OptoutCheck,
) -> MessageClaim:
    """Step 1 of the protocol. The caller commits right after."""
    query = (
        select(OutboundMessage)
        .where(OutboundMessage.id == message_id)
        .with_for_update(skip_locked=True)
    )
    row = session.scalars(query).first()
    if row is None:
        return MessageClaim("skipped")
    if row.state == "sending" and row.provider_call_at is not None:
        _move(row, "unknown", now, code="interrupted")
        return MessageClaim("unknown", row.channel)
    if row.state == "sending":  # the provider was never called: safe to claim again
        _move(row, "queued", now, code="reclaimed")
        row.next_attempt_at = min(row.next_attempt_at, now)
    if row.state not in ("queued", "held"):
        return MessageClaim("skipped")
    if row.next_attempt_at > now:
        if row.state == "held":  # released by the inbox sweep when its window opens
            return MessageClaim("held", row.channel)
        return MessageClaim("not_due", row.channel, due_at=row.next_attempt_at)
    blocked_reason = _blocked_reason(session, row, opted_out)
    if blocked_reason is not None:
        _move(row, "blocked", now, code=blocked_reason)
        return MessageClaim("blocked", row.channel)
    held = _hold_for_quiet_hours(session, cipher, row, now)
    if held is not None:
        return MessageClaim(held, row.channel)
    row.attempts += 1
    row.claimed_at = now
    row.provider_call_at = None
    _move(row, "sending", now)
    return MessageClaim("claimed", row.channel, message=_claimed(session, cipher, row))


def start_provider_call(
    session: Session, message_id: uuid.UUID, attempt: int, now: datetime, opted_out: OptoutCheck
) -> str:
    """Step 2: "call" once `provider_call_at` is set; "stale" if this attempt no longer holds
    the row (a later delivery took it back); "blocked" if a STOP (or an unlinked chat) landed
    since the claim. Only "call" lets the caller call the provider, after COMMIT."""
    query = select(OutboundMessage).where(OutboundMessage.id == message_id).with_for_update()
    row = session.scalars(query).first()
    if row is None or row.attempts != attempt or row.state != "sending":
        return "stale"
    if row.provider_call_at is not None:
        return "stale"
    blocked_reason = _blocked_reason(session, row, opted_out)
    if blocked_reason is not None:
        _move(row, "blocked", now, code=blocked_reason)
        return "blocked"
    row.provider_call_at = now
    return "call"


def return_uncalled(
    session: Session, message_id: uuid.UUID, attempt: int, due_at: datetime, now: datetime
) -> bool:
    """Undo step 2 when the provider was not called after all (the org's SMS are held): back
    to `queued`, due at `due_at`, the attempt not counted. Fenced by the attempt number."""
    query = select(OutboundMessage).where(OutboundMessage.id == message_id).with_for_update()
    row = session.scalars(query).first()
    if row is None or row.attempts != attempt or row.state != "sending":
        return False
    if row.provider_call_at is None:
        return False
    row.provider_call_at = None
    row.attempts -= 1
    row.next_attempt_at = due_at
    _move(row, "queued", now, code="held")
    return True


_WINDOWS: Cache[uuid.UUID, QuietWindow] = Cache(("organizations",))
_SERVICES: Cache[tuple[uuid.UUID, str], str | None] = Cache(("org_phone_numbers",))


def _hold_for_quiet_hours(
    session: Session, cipher: OrgCipher, row: OutboundMessage, now: datetime
) -> str | None:
    """Hold the row until the recipient's window opens ("held"), or fail it when the window
    never opens ("failed"); None when it may go now."""
    if not quiet_hours_apply(row.channel, row.purpose, row.reply_to_at, now):
        return None
    window = _WINDOWS.get(row.org_id, lambda: org_window(session, row.org_id))
    recipient = cipher.decrypt(row.recipient_ct, TABLE, "recipient_ct", row.id).decode()
    opens = next_open(recipient_zones(recipient), window, now)
    if opens is None:
        _move(row, "failed", now, code="no_quiet_window")
        return "failed"
    if opens <= now:
        return None
    row.not_before = row.next_attempt_at = opens
    _move(row, "held", now, code="quiet_hours")
    return "held"


def messaging_service_for(session: Session, org_id: uuid.UUID, sender: str | None) -> str | None:
    """Tenant session: the Messaging Service configured on the org's sending number."""
    if sender is None:
        return None
    query = select(OrgPhoneNumber.messaging_service_sid).where(OrgPhoneNumber.number == sender)
    return _SERVICES.get((org_id, sender), lambda: session.scalar(query))


def _blocked_reason(session: Session, row: OutboundMessage, opted_out: OptoutCheck) -> str | None:
    if row.channel in SUPPRESSIBLE_CHANNELS and opted_out(session, row.org_id, row.recipient_bidx):
        return "suppressed"
    if row.channel == "telegram":
        chat = session.get(TelegramChat, row.telegram_chat_id) if row.telegram_chat_id else None
        if chat is None or chat.status != "linked":
            return "chat_unlinked"
    if row.channel in SOCIAL_CHANNELS:
        return _social_blocked_reason(session, row, opted_out)
    return None


def _social_blocked_reason(
    session: Session, row: OutboundMessage, opted_out: OptoutCheck
) -> str | None:
    """An opt-out received on that channel, or a connection no longer active, blocks it."""
    if opted_out(session, row.org_id, row.recipient_bidx):
        return "suppressed"
    connection = session.get(Connection, row.connection_id) if row.connection_id else None
    if connection is None or connection.status != ConnectionStatus.ACTIVE:
        return "not_connected"
    return None


def _claimed_connection(
    session: Session, cipher: OrgCipher, row: OutboundMessage
) -> ClaimedConnection | None:
    connection = session.get(Connection, row.connection_id) if row.connection_id else None
    token = connection_token(cipher, connection) if connection is not None else None
    if connection is None or token is None:
        return None
    return ClaimedConnection(connection.id, connection.account_id, token)


def _claimed(session: Session, cipher: OrgCipher, row: OutboundMessage) -> ClaimedMessage:
    return ClaimedMessage(
        id=row.id,
        org_id=row.org_id,
        channel=row.channel,
        recipient=cipher.decrypt(row.recipient_ct, TABLE, "recipient_ct", row.id).decode(),
        body=cipher.decrypt(row.body_ct, TABLE, "body_ct", row.id).decode(),
        sender=row.sender,
        attempt=row.attempts,
        recipient_bidx=row.recipient_bidx,
        lead_id=row.lead_id,
        telegram_chat_id=row.telegram_chat_id,
        messaging_service=messaging_service_for(session, row.org_id, row.sender)
        if row.channel == "sms"
        else None,
        connection=_claimed_connection(session, cipher, row),
    )


def _move(row: OutboundMessage, state: str, now: datetime, code: str | None = None) -> None:
    row.state = state
    row.updated_at = now
    if code is not None:
        row.last_error_code = code[:32]


def record_outcome(
    session: Session, message_id: uuid.UUID, attempt: int, outcome: MessageOutcome, now: datetime
) -> OutboundMessage | None:
    """Step 3. Applies only to the attempt this worker claimed; returns the row if applied."""
    query = select(OutboundMessage).where(OutboundMessage.id == message_id).with_for_update()
    row = session.scalars(query).first()
    if row is None or row.attempts != attempt or row.state not in ("sending", "unknown"):
        return None
    _move(row, outcome.state, now, code=outcome.code)
    if outcome.provider_sid is not None:
        row.provider_sid = outcome.provider_sid
    if outcome.state == "sent":
        row.sent_at = now
    if outcome.state == "queued":
        row.next_attempt_at = outcome.next_attempt_at or now
    return row


STATUS_CALLBACK_STATES = {
    "sent": "sent",
    "delivered": "delivered",
    "undelivered": "undelivered",
    "failed": "failed",
}
_STATUS_RANK = {
    "sending": 0,
    "unknown": 0,
    "sent": 1,
    "delivered": 2,
    "undelivered": 2,
    "failed": 2,
}


def apply_delivery_status(
    session: Session, provider_sid: str, status: str, error_code: str | None, now: datetime
) -> OutboundMessage | None:
    """A Twilio status callback. Moves forward only (sent → delivered|undelivered)."""
    target = STATUS_CALLBACK_STATES.get(status)
    if target is None:
        return None
    row = session.scalars(
        select(OutboundMessage)
        .where(OutboundMessage.provider_sid == provider_sid, OutboundMessage.channel == "sms")
        .with_for_update()
    ).first()
    if row is None or row.state not in _STATUS_RANK:
        return None
    if _STATUS_RANK[target] <= _STATUS_RANK[row.state]:
        return None
    _move(row, target, now, code=error_code)
    return row


def stale_outbound(
    session: Session, queued_before: datetime, sending_before: datetime, limit: int = 1000
) -> list[tuple[uuid.UUID, uuid.UUID, str]]:
    """(org, id, channel) of rows a lost or interrupted message left behind. Maintenance."""
    query = (
        select(OutboundMessage.org_id, OutboundMessage.id, OutboundMessage.channel)
        .where(
            or_(
                and_(
                    OutboundMessage.state == "queued",
                    OutboundMessage.next_attempt_at <= queued_before,
                ),
                and_(
                    OutboundMessage.state == "sending",
                    OutboundMessage.claimed_at <= sending_before,
                ),
                # Claimed but the provider never called: as safe to send again as `queued`.
                and_(
                    OutboundMessage.state == "sending",
                    OutboundMessage.provider_call_at.is_(None),
                    OutboundMessage.claimed_at <= queued_before,
                ),
            )
        )
        .order_by(OutboundMessage.next_attempt_at)
        .limit(limit)
    )
    return [(row.org_id, row.id, row.channel) for row in session.execute(query)]


def lock_due_held(
    session: Session, now: datetime, limit: int = RELEASE_BATCH
) -> list[OutboundMessage]:
    """Maintenance: held rows whose window has opened, locked, oldest first."""
    query = (
        select(OutboundMessage)
        .where(OutboundMessage.state == "held", OutboundMessage.not_before <= now)
        .order_by(OutboundMessage.not_before)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return list(session.scalars(query))


def release_held(row: OutboundMessage, due: datetime, now: datetime) -> None:
    """Back to `queued`, due at `due`; the claim checks the opt-out and the window again."""
    row.next_attempt_at = due
    _move(row, "queued", now, code="released")


@dataclass(frozen=True)
class UnknownMessage:
    """An `unknown` row with its plaintext, for asking the provider whether it got it."""

    id: uuid.UUID
    org_id: uuid.UUID
    channel: str
    purpose: str
    recipient: str
    body: str
    sender: str | None
    attempt: int
    called_at: datetime
    messaging_service: str | None = None

    @property
    def may_resend(self) -> bool:
        return self.purpose in AT_LEAST_ONCE_PURPOSES


def unknown_to_reconcile(session: Session, limit: int = 200) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """(org, id) of `unknown` rows reconciliation has not given up on, oldest first."""
    query = (
        select(OutboundMessage.org_id, OutboundMessage.id)
        .where(
            OutboundMessage.state == "unknown",
            or_(
                OutboundMessage.last_error_code.is_(None),
                OutboundMessage.last_error_code.not_in(FOR_OPERATORS),
            ),
        )
        .order_by(OutboundMessage.updated_at)
        .limit(limit)
    )
    return [(row.org_id, row.id) for row in session.execute(query)]


def load_unknown(
    session: Session, cipher: OrgCipher, message_id: uuid.UUID
) -> UnknownMessage | None:
    row = session.get(OutboundMessage, message_id)
    if row is None or row.state != "unknown":
        return None
    return UnknownMessage(
        id=row.id,
        org_id=row.org_id,
        channel=row.channel,
        purpose=row.purpose,
        recipient=cipher.decrypt(row.recipient_ct, TABLE, "recipient_ct", row.id).decode(),
        body=cipher.decrypt(row.body_ct, TABLE, "body_ct", row.id).decode(),
        sender=row.sender,
        attempt=row.attempts,
        # Rows from before provider_call_at existed: the claim is the closest moment known.
        called_at=row.provider_call_at or row.claimed_at or row.created_at,
        messaging_service=messaging_service_for(session, row.org_id, row.sender),
    )


def recorded_sids(session: Session, sids: Sequence[str]) -> set[str]:
    """Which of these provider ids a row of this org already holds."""
    if not sids:
        return set()
    query = select(OutboundMessage.provider_sid).where(OutboundMessage.provider_sid.in_(sids))
    return {sid for sid in session.scalars(query) if sid is not None}


def unknown_outbound(
    session: Session, limit: int = 500, org_id: uuid.UUID | None = None
) -> list[dict[str, object]]:
    """Rows whose outcome nobody could decide: operators do. Ids and codes only, no PII.

    Rows reconciliation is still working on are left out unless they have waited an hour
    (the provider could not be asked all that time)."""
    query = (
        select(
            OutboundMessage.id,
            OutboundMessage.org_id,
            OutboundMessage.channel,
            OutboundMessage.purpose,
            OutboundMessage.last_error_code,
            OutboundMessage.created_at,
            OutboundMessage.updated_at,
        )
        .where(
            OutboundMessage.state == "unknown",
            or_(
                OutboundMessage.last_error_code.in_(FOR_OPERATORS),
                OutboundMessage.updated_at < func.now() - UNDECIDED_FOR_OPERATORS,
            ),
        )
        .order_by(OutboundMessage.updated_at.desc())
        .limit(limit)
    )
    if org_id is not None:
        query = query.where(OutboundMessage.org_id == org_id)
    return [
        {
            "id": str(row.id),
            "org_id": str(row.org_id),
            "channel": row.channel,
            "purpose": row.purpose,
            "error": row.last_error_code,
            "created_at": row.created_at.isoformat(),
            "updated_at": row.updated_at.isoformat(),
        }
        for row in session.execute(query)
    ]


RESOLVED_STATES = ("sent", "failed")


class NotUnknownError(LeadlineError):
    """Only a message in state `unknown` can be resolved by an operator."""


def outbound_org(session: Session, message_id: uuid.UUID) -> uuid.UUID:
    """Maintenance scope: the organisation of an outbound message (the CLI only has its id)."""
    org_id: uuid.UUID | None = session.scalar(
        select(OutboundMessage.org_id).where(OutboundMessage.id == message_id)
    )
    if org_id is None:
        raise NotFoundError("no outbound message with that id (`leadline alerts unknown`)")
    return org_id


def resolve_unknown(
    session: Session, message_id: uuid.UUID, state: str, now: datetime, actor: str = "cli"
) -> OutboundMessage:
    """Tenant session: an operator checked with the provider; `unknown` becomes sent or failed.

    Never re-sends anything. Every other state is refused: the outcome is already known."""
    if state not in RESOLVED_STATES:
        raise ValueError(f"state must be one of {RESOLVED_STATES}")
    query = select(OutboundMessage).where(OutboundMessage.id == message_id).with_for_update()
    row = session.scalars(query).first()
    if row is None:
        raise NotFoundError("no outbound message with that id (`leadline alerts unknown`)")
    if row.state != "unknown":
        raise NotUnknownError(
            f"message is {row.state}, not unknown (only `leadline alerts unknown` ones resolve)"
        )
    _move(row, state, now)
    record_audit(
        session,
        actor,
        "alerts.resolved",
        org_id=row.org_id,
        target=str(row.id),
        details={"from": "unknown", "to": state, "channel": row.channel},
    )
    return row


def carrier_rejections(session: Session) -> list[dict[str, object]]:
    """Twilio 30007 (carrier filtering) and 30034 (unregistered number) of the last 7 days,
    counted per org, sending number and code. The sending number is the business's own."""
    query = (
        select(
            OutboundMessage.org_id,
            OutboundMessage.sender,
            OutboundMessage.last_error_code,
            func.count().label("messages"),
            func.max(OutboundMessage.updated_at).label("last_at"),
        )
        .where(
            OutboundMessage.last_error_code.in_(CARRIER_REJECTIONS),
            OutboundMessage.updated_at >= func.now() - CARRIER_REJECTIONS_SHOWN,
        )
        .group_by(OutboundMessage.org_id, OutboundMessage.sender, OutboundMessage.last_error_code)
        .order_by(func.count().desc())
    )
    return [
        {
            "org_id": str(row.org_id),
            "number": row.sender or "(default sender)",
            "error": row.last_error_code,
            "meaning": CARRIER_REJECTIONS.get(row.last_error_code or "", ""),
            "messages": int(row.messages),
            "last_at": row.last_at.isoformat(),
        }
        for row in session.execute(query)
    ]


def count_by_state(session: Session, campaign_id: uuid.UUID) -> dict[str, int]:
    query = (
        select(OutboundMessage.state, func.count())
        .where(OutboundMessage.campaign_id == campaign_id)
        .group_by(OutboundMessage.state)
    )
    return {state: int(count) for state, count in session.execute(query).tuples()}


def unlink_telegram_chat(session: Session, chat_row_id: uuid.UUID, now: datetime) -> bool:
    result = session.execute(
        update(TelegramChat)
        .where(TelegramChat.id == chat_row_id, TelegramChat.status == "linked")
        .values(status="unlinked", unlinked_at=now)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]
