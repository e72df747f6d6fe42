"""send_sms / send_telegram / send_email / send_social: claim the row, call the provider,
record what happened. Instagram, Messenger and WhatsApp go out through the Graph API with the
token of the row's connection (tasks/meta_graph.py); a token the provider rejects (error 190)
marks the connection `expired`, which puts it on the operators' attention list.

Retries live on the row, not in Dramatiq: a transient failure puts the row back to `queued`
with `next_attempt_at` (exponential backoff with jitter, or Telegram's retry_after) and sends
a delayed message. If Redis loses that message, the inbox sweep finds the row once it is due,
so a retry is delayed but never lost, and the attempt count survives any restart.
Dramatiq's own retries only cover infrastructure failures (database down) before or after
the provider call; a retried delivery that finds the row `sending` claims it again if the
provider call had not started (no `provider_call_at`), and otherwise marks it `unknown`.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import replace
from datetime import datetime, timedelta

import dramatiq
import redis
from sqlalchemy.orm import Session

from leadline.logging import get_logger
from leadline.metrics import MESSAGES_SENT
from leadline.settings import Settings
from models.campaigns import reserve_send_slots
from models.connections import mark_expired
from models.email_content import TRANSACTIONAL_STREAM, decode_email
from models.messaging import SOCIAL_CHANNELS, OutboundMessage
from models.outbound_messages import (
    ClaimedMessage,
    MessageOutcome,
    claim_outbound,
    lock_due_held,
    record_outcome,
    release_held,
    return_uncalled,
    stale_outbound,
    start_provider_call,
    unlink_telegram_chat,
)
from tasks.after_commit import AfterCommit
from tasks.context import TaskContext, get_context
from tasks.meta_graph import send_graph_message
from tasks.optouts import OptoutChange, carrier_optout_reason, is_opted_out, record_optout
from tasks.providers import (
    OutgoingEmail,
    ProviderResult,
    send_postmark_email,
    send_telegram_message,
    send_twilio_sms,
)
from workers.runtime import actor
from workers.sms_holds import sms_held

log = get_logger(__name__)
HELD_RETRY_SECONDS = 2.0


@actor(queue_name="messages", max_retries=20)
def send_sms(org_id: str, message_id: str) -> None:
    deliver_outbound(get_context(), uuid.UUID(org_id), uuid.UUID(message_id))


@actor(queue_name="messages", max_retries=20)
def send_telegram(org_id: str, message_id: str) -> None:
    deliver_outbound(get_context(), uuid.UUID(org_id), uuid.UUID(message_id))


@actor(queue_name="messages", max_retries=20)
def send_email(org_id: str, message_id: str) -> None:
    deliver_outbound(get_context(), uuid.UUID(org_id), uuid.UUID(message_id))


@actor(queue_name="messages", max_retries=20)
def send_social(org_id: str, message_id: str) -> None:
    deliver_outbound(get_context(), uuid.UUID(org_id), uuid.UUID(message_id))


SENDERS: dict[str, dramatiq.Actor[[str, str], None]] = {
    "sms": send_sms,
    "telegram": send_telegram,
    "email": send_email,
    **{channel.value: send_social for channel in SOCIAL_CHANNELS},
}
# Who is named as the actor of a suppression a provider's refusal records.
PROVIDER_NAMES = {"sms": "twilio", "telegram": "telegram", "email": "postmark"}


def enqueue_send(channel: str, org_id: uuid.UUID, message_id: uuid.UUID, delay: float = 0) -> bool:
    """After COMMIT only. A failure is logged: the inbox sweep picks the row up later."""
    delay_ms = int(delay * 1000) if delay > 0 else None
    try:
        SENDERS[channel].send_with_options(args=(str(org_id), str(message_id)), delay=delay_ms)
    except (redis.RedisError, OSError, dramatiq.errors.BrokerError) as exc:
        log.warning("enqueue deferred to the sweeper", channel=channel, error=type(exc).__name__)
        return False
    return True


def add_send(
    after_commit: AfterCommit, channel: str, org_id: uuid.UUID, message_id: uuid.UUID
) -> None:
    after_commit.add(SENDERS[channel], str(org_id), str(message_id))


def deliver_outbound(context: TaskContext, org_id: uuid.UUID, message_id: uuid.UUID) -> str:
    """One delivery of one message id. Returns the row's resulting state (or what happened)."""
    now = context.clock()
    with context.db.tenant(org_id) as session:
        cipher = context.keys.cipher(session, org_id)
        claim = claim_outbound(session, cipher, message_id, now, is_opted_out)
    if claim.outcome == "not_due" and claim.due_at is not None:
        enqueue_send(claim.channel, org_id, message_id, (claim.due_at - now).total_seconds())
        return "not_due"
    if claim.outcome in ("blocked", "unknown", "held", "failed"):
        MESSAGES_SENT.labels(channel=claim.channel, state=claim.outcome).inc()
    if claim.message is None:
        return claim.outcome
    started = mark_provider_call_started(context, claim.message)
    if started != "call":
        if started == "blocked":
            MESSAGES_SENT.labels(channel=claim.channel, state="blocked").inc()
        return started
    # Asked after provider_call_at is committed: a hold set before this check is seen, and
    # one set after it came after the decision to send (workers/sms_holds.py).
    if claim.message.channel == "sms" and sms_held(org_id):
        return hold_back(context, claim.message)
    result = call_provider(context.settings, claim.message)
    return record_result(context, claim.message, result)


def hold_back(context: TaskContext, message: ClaimedMessage) -> str:
    """The org's SMS are held while an intake's spool holds an opt-out for it: the provider
    is not called, and the message is due again in a moment."""
    now = context.clock()
    due = now + timedelta(seconds=HELD_RETRY_SECONDS)
    with context.db.tenant(message.org_id) as session:
        returned = return_uncalled(session, message.id, message.attempt, due, now)
    if returned:
        enqueue_send(message.channel, message.org_id, message.id, HELD_RETRY_SECONDS)
    return "held"


def mark_provider_call_started(context: TaskContext, message: ClaimedMessage) -> str:
    """Committed before the request leaves: a worker that dies before this is retried safely,
    and a STOP recorded since the claim still blocks the message."""
    with context.db.tenant(message.org_id) as session:
        return start_provider_call(
            session, message.id, message.attempt, context.clock(), is_opted_out
        )


def call_provider(settings: Settings, message: ClaimedMessage) -> ProviderResult:
    try:
        if message.channel == "sms":
            return send_twilio_sms(
                settings,
                message.recipient,
                message.body,
                message.sender,
                message.messaging_service,
            )
        if message.channel == "email":
            return send_postmark_email(settings, outgoing_email(settings, message))
        if message.channel in SOCIAL_CHANNELS:
            return send_social_message(settings, message)
        return send_telegram_message(settings, message.recipient, message.body)
    except Exception as exc:  # the row is `sending`: whatever broke, the outcome is unknown
        log.error("provider call raised", channel=message.channel, error=type(exc).__name__)
        return ProviderResult("unknown", code="exception")


def outgoing_email(settings: Settings, message: ClaimedMessage) -> OutgoingEmail:
    content = decode_email(message.body)
    stream = (
        settings.postmark_broadcast_stream
        if content.stream == "broadcast"
        else TRANSACTIONAL_STREAM
    )
    return OutgoingEmail(
        to=message.recipient,
        sender=content.sender,
        subject=content.subject,
        text=content.text,
        stream=stream,
        headers=content.headers,
        # Postmark returns these with bounces and complaints: they route them to the org.
        metadata={"leadline_org": str(message.org_id), "leadline_message": str(message.id)},
    )


def send_social_message(settings: Settings, message: ClaimedMessage) -> ProviderResult:
    connection = message.connection
    if connection is None:  # its token was deleted since the claim
        return ProviderResult("failed", code="not_connected")
    return send_graph_message(
        settings,
        message.channel,
        connection.account_id,
        connection.token,
        message.recipient,
        message.body,
    )


def outcome_for(
    settings: Settings, message: ClaimedMessage, result: ProviderResult, now: datetime
) -> MessageOutcome:
    if result.kind == "retry":
        if message.attempt >= settings.leadline_sms_max_attempts:
            return MessageOutcome("failed", code=result.code)
        delay = retry_delay(settings, message.attempt, result.retry_after)
        return MessageOutcome(
            "queued", code=result.code, next_attempt_at=now + timedelta(seconds=delay)
        )
    state = {"sent": "sent", "blocked": "blocked", "unknown": "unknown"}.get(result.kind, "failed")
    # expired (the connection's token was rejected): failed, and the connection is marked.
    return MessageOutcome(state, code=result.code, provider_sid=result.provider_sid)


def retry_delay(settings: Settings, attempt: int, retry_after: float | None = None) -> float:
    """Provider-given wait if any, else exponential backoff with "equal jitter"."""
    if retry_after is not None:
        return max(retry_after, 0.0)
    ceiling = min(
        settings.leadline_sms_retry_max_seconds,
        settings.leadline_sms_retry_base_seconds * 2 ** max(attempt - 1, 0),
    )
    return float(ceiling / 2 + random.uniform(0, ceiling / 2))


def record_result(context: TaskContext, message: ClaimedMessage, result: ProviderResult) -> str:
    now = context.clock()
    outcome = outcome_for(context.settings, message, result, now)
    after_commit = AfterCommit()
    with context.db.tenant(message.org_id) as session:
        row = record_outcome(session, message.id, message.attempt, outcome, now)
        if row is None:
            return "stale"
        reason = carrier_optout_reason(result.code) if result.kind == "blocked" else None
        if reason is not None:
            cipher = context.keys.cipher(session, message.org_id)
            provider = PROVIDER_NAMES[message.channel]
            change = OptoutChange(
                session, cipher, message.recipient_bidx, reason, provider, after_commit, now
            )
            record_optout(replace(change, lead_id=message.lead_id, channel=message.channel))
        if result.kind == "unlink" and message.telegram_chat_id is not None:
            unlink_telegram_chat(session, message.telegram_chat_id, now)
        if result.kind == "expired" and message.connection is not None:
            mark_expired(session, message.connection.id, result.code or "expired", now)
    after_commit.flush()
    MESSAGES_SENT.labels(channel=message.channel, state=outcome.state).inc()
    if outcome.state == "queued" and outcome.next_attempt_at is not None:
        delay = (outcome.next_attempt_at - now).total_seconds()
        enqueue_send(message.channel, message.org_id, message.id, delay)
    return outcome.state


def sweep_outbound(
    context: TaskContext,
    queued_older_than: float | None = None,
    sending_older_than: float | None = None,
) -> int:
    """Re-enqueue rows a lost Redis message left `queued`, and rows stuck in `sending`
    (their next delivery claims them again if the provider was never called, else marks them
    `unknown`). Returns how many were enqueued."""
    settings = context.settings
    queued_age = (
        settings.leadline_outbound_queued_stale_seconds
        if queued_older_than is None
        else queued_older_than
    )
    sending_age = (
        settings.leadline_outbound_sending_stale_seconds
        if sending_older_than is None
        else sending_older_than
    )
    now = context.clock()
    with context.db.maintenance() as session:
        rows = stale_outbound(
            session, now - timedelta(seconds=queued_age), now - timedelta(seconds=sending_age)
        )
    return sum(enqueue_send(channel, org_id, row_id) for org_id, row_id, channel in rows)


def release_due_held(context: TaskContext) -> int:
    """Held messages whose quiet hours are over go back to `queued` and are enqueued.

    The claim then checks the opt-out and the window once more, so a STOP while held blocks
    the message and a slot that falls after the window closes holds it again. Returns how
    many were released."""
    now = context.clock()
    interval = 1.0 / context.settings.leadline_campaign_rate_per_sender
    with context.db.maintenance() as session:
        released = release_paced(session, lock_due_held(session, now), interval, now)
    for row_id, org_id, channel, due in released:
        enqueue_send(channel, org_id, row_id, max((due - now).total_seconds(), 0.0))
    return len(released)


def release_paced(
    session: Session, rows: list[OutboundMessage], interval: float, now: datetime
) -> list[tuple[uuid.UUID, uuid.UUID, str, datetime]]:
    """Campaign messages get new consecutive slots on their sending number (a campaign held
    overnight must not leave in one burst at 08:00); others are due now. Maintenance."""
    by_sender: dict[str, list[OutboundMessage]] = {}
    for row in rows:
        sender = (row.sender or "default") if row.purpose == "campaign" else ""
        by_sender.setdefault(sender, []).append(row)
    released = []
    for sender, group in by_sender.items():
        first = reserve_send_slots(session, sender, len(group), interval, now) if sender else now
        for slot, row in enumerate(group):
            due = first + timedelta(seconds=interval * slot) if sender else now
            release_held(row, due, now)
            released.append((row.id, row.org_id, row.channel, due))
    return released
