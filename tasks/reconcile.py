"""Reconciling `unknown` messages: ask the provider, and decide only what can be decided.

Runs with the inbox sweep (scheduler job `sweep_inbox`, every minute). For each `unknown` row:

- SMS: list the messages Twilio holds to that number, sent since the day of the provider call.
  A match is a message with the same `from`, the same `to` and exactly the same body, created
  within [provider call - 2 min, provider call + provider timeout + 2 min] (the margins cover
  clock skew), whose sid no row of the org holds yet. Exactly one match → `sent` with that
  sid. Several → `unknown` with code `ambiguous`, for operators.
- No match (or Telegram, which cannot be asked): nothing is decided until the grace period
  (RECONCILE_GRACE_SECONDS after the call) has passed, because Twilio lists a message by its
  send date and one still queued there is not listed yet. After it: an alert to the business's
  own numbers or chats goes back to `queued` and is sent again (at least once); a message to a
  lead stays `unknown` with code `not_at_provider`, for operators (at most once: the provider
  not listing it is strong evidence, not proof).
- Twilio cannot be asked (network, auth): left as it is, tried at the next sweep.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from leadline.errors import CryptoError
from leadline.logging import get_logger
from leadline.metrics import MESSAGES_SENT
from models.outbound_messages import (
    MessageOutcome,
    UnknownMessage,
    load_unknown,
    record_outcome,
    recorded_sids,
    unknown_to_reconcile,
)
from tasks.context import TaskContext
from tasks.providers import ProviderMessage, list_twilio_messages, messaging_service
from tasks.sending import enqueue_send

log = get_logger(__name__)
RECONCILE_GRACE_SECONDS = 300.0
CLOCK_SKEW = timedelta(minutes=2)
MAX_RECONCILED = 200


def reconcile_unknown(context: TaskContext, grace_seconds: float | None = None) -> int:
    """Resolve what can be resolved; returns how many rows left `unknown`."""
    grace = timedelta(seconds=RECONCILE_GRACE_SECONDS if grace_seconds is None else grace_seconds)
    with context.db.maintenance() as session:
        rows = unknown_to_reconcile(session, MAX_RECONCILED)
    return sum(reconcile_guarded(context, org_id, row_id, grace) for org_id, row_id in rows)


def reconcile_guarded(
    context: TaskContext, org_id: uuid.UUID, message_id: uuid.UUID, grace: timedelta
) -> bool:
    """One row whose org lost its keys (deleted) must not stop the others."""
    try:
        return reconcile_message(context, org_id, message_id, grace)
    except CryptoError as exc:
        log.warning(
            "unknown message not reconciled", message_id=str(message_id), error=type(exc).__name__
        )
        return False


def reconcile_message(
    context: TaskContext, org_id: uuid.UUID, message_id: uuid.UUID, grace: timedelta
) -> bool:
    with context.db.tenant(org_id) as session:
        message = load_unknown(session, context.keys.cipher(session, org_id), message_id)
    if message is None:
        return False
    found = provider_matches(context, message)
    if found is None:
        return False
    with context.db.tenant(org_id) as session:
        candidates = sorted(set(found) - recorded_sids(session, found))
    outcome = decide(context, message, candidates, grace)
    if outcome is None:
        return False
    now = context.clock()
    with context.db.tenant(org_id) as session:
        row = record_outcome(session, message.id, message.attempt, outcome, now)
    if row is None:
        return False
    log.info("unknown message reconciled", message_id=str(message.id), state=outcome.state)
    if outcome.state in ("sent", "failed"):
        MESSAGES_SENT.labels(channel=message.channel, state=outcome.state).inc()
    if outcome.state == "queued":
        enqueue_send(message.channel, org_id, message.id)
    return outcome.state != "unknown"


def provider_matches(context: TaskContext, message: UnknownMessage) -> list[str] | None:
    """Sids of provider messages that are this one; None when the provider cannot say."""
    if message.channel != "sms":
        return []
    since = (message.called_at - CLOCK_SKEW).date()
    service = messaging_service(context.settings, message.messaging_service)
    # Through a Messaging Service, Twilio chose the sending number: match the service instead.
    sender = None if service else message.sender
    listed = list_twilio_messages(context.settings, message.recipient, sender, since)
    if listed is None:
        return None
    timeout = timedelta(seconds=context.settings.leadline_provider_timeout_seconds)
    window = (message.called_at - CLOCK_SKEW, message.called_at + timeout + CLOCK_SKEW)
    return [m.sid for m in listed if is_match(message, m, window, service)]


def is_match(
    message: UnknownMessage,
    listed: ProviderMessage,
    window: tuple[datetime, datetime],
    service: str | None = None,
) -> bool:
    created = listed.created_at
    same_sender = (
        listed.messaging_service == service if service else listed.sender == message.sender
    )
    return (
        listed.to == message.recipient
        and same_sender
        and listed.body == message.body
        and created is not None
        and window[0] <= created <= window[1]
    )


def decide(
    context: TaskContext, message: UnknownMessage, candidates: list[str], grace: timedelta
) -> MessageOutcome | None:
    if len(candidates) == 1:
        return MessageOutcome("sent", code="reconciled", provider_sid=candidates[0])
    if candidates:
        return MessageOutcome("unknown", code="ambiguous")
    if context.clock() - message.called_at < grace:
        return None
    if not message.may_resend:
        return MessageOutcome("unknown", code="not_at_provider")
    if message.attempt >= context.settings.leadline_sms_max_attempts:
        return MessageOutcome("failed", code="unknown_exhausted")
    return MessageOutcome("queued", code="resent_unknown", next_attempt_at=context.clock())
