"""Records every message Dramatiq gives up on in the `dead_letters` table.

Dramatiq rejects ("nacks") a message into `<queue>.XQ` when Retries runs out or meets a
`throws` exception, when AgeLimit drops it, and when no actor of that name exists. Every one of
those paths goes through `nack`, so `before_nack` is the one hook that sees them all. It is
placed after Retries in the middleware list for readers: Retries marks `message.failed` in its
`after_process_message`, and the nack follows every `after_process_message`.

The row is written before the nack so it exists even while the broker is down (the worker
retries the nack until the broker answers; the upsert is idempotent). Error text and traceback
pass through the one redaction function and are truncated. A failing database write is
logged, never raised: the message still reaches `.XQ`.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable

import dramatiq
from dramatiq.broker import MessageProxy
from dramatiq.common import q_name
from dramatiq.errors import ActorNotFound
from dramatiq.middleware import Middleware, SkipMessage

from leadline.clock import Clock, utcnow
from leadline.logging import get_logger, redact_text
from leadline.metrics import DEAD_LETTERS
from models.db import Database
from workers.brokers import LeadlineBroker
from workers.dlq import Failure, record_dead_letter

log = get_logger("leadline.workers.dead_letters")
DatabaseProvider = Callable[[], Database | None]
ERROR_MESSAGE_LIMIT = 500
TRACEBACK_LIMIT = 8000


class DeadLetters(Middleware):
    """Writes a `dead_letters` row for each rejected message (see the module docstring)."""

    def __init__(self, database: DatabaseProvider, clock: Clock = utcnow) -> None:
        self.database = database
        self.clock = clock

    def before_nack(self, broker: dramatiq.Broker, message: MessageProxy) -> None:
        ids = {"message_id": message.message_id, "actor": message.actor_name}
        database = self.database()
        if database is None:
            log.error("dead letter not recorded: no database configured", **ids)
            return
        try:
            failure = describe_failure(broker, message)
            with database.maintenance() as session:
                became_dead = record_dead_letter(session, failure, self.clock())
        except Exception as exc:
            log.error("dead letter not recorded", error=type(exc).__name__, **ids)
            return
        if became_dead:
            DEAD_LETTERS.labels(actor=failure.actor).inc()
            log.warning("message dead-lettered", reason=failure.reason, **_ids(failure))


def describe_failure(broker: dramatiq.Broker, message: MessageProxy) -> Failure:
    exception = getattr(message, "_exception", None)
    reason = failure_reason(broker, message, exception)
    return Failure(
        message_id=message.message_id,
        queue=q_name(message.queue_name),
        actor=message.actor_name,
        reason=reason,
        error_class=type(exception).__name__ if exception else "Unknown",
        error_message=truncate(redact_text(str(exception or "")), ERROR_MESSAGE_LIMIT),
        traceback=redacted_traceback(exception),
        retries=retries_done(message, reason),
        broker_message_id=dead_letter_key(broker, message),
        args=list(message.args),
        kwargs=dict(message.kwargs),
    )


def dead_letter_key(broker: dramatiq.Broker, message: MessageProxy) -> str | None:
    """The broker's id of the copy it is about to put in `.XQ` (workers/brokers.py)."""
    return broker.dead_letter_key(message) if isinstance(broker, LeadlineBroker) else None


def retries_done(message: MessageProxy, reason: str) -> int:
    """Retries counts failures, and counts the final one too when it gives up on them."""
    failures = int(message.options.get("retries", 0))
    return max(0, failures - 1) if reason == "retries_exhausted" else failures


def failure_reason(
    broker: dramatiq.Broker, message: MessageProxy, exception: BaseException | None
) -> str:
    if isinstance(exception, ActorNotFound):
        return "unknown_actor"
    if isinstance(exception, SkipMessage):
        return "age_limit"
    if exception is not None and isinstance(exception, _throws(broker, message)):
        return "not_retryable"
    return "retries_exhausted" if exception is not None else "rejected"


def _throws(broker: dramatiq.Broker, message: MessageProxy) -> tuple[type[BaseException], ...]:
    throws = message.options.get("throws")
    if not throws and message.actor_name in broker.actors:
        throws = broker.get_actor(message.actor_name).options.get("throws")
    if not throws:
        return ()
    return throws if isinstance(throws, tuple) else (throws,)


def redacted_traceback(exception: BaseException | None) -> str | None:
    if exception is None or exception.__traceback__ is None:
        return None
    text = "".join(traceback.format_exception(exception, limit=30))
    return truncate(redact_text(text), TRACEBACK_LIMIT, keep_end=True)


def truncate(text: str, limit: int, *, keep_end: bool = False) -> str:
    if len(text) <= limit:
        return text
    return "…" + text[-(limit - 1) :] if keep_end else text[: limit - 1] + "…"


def _ids(failure: Failure) -> dict[str, str]:
    return {"message_id": failure.message_id, "actor": failure.actor, "queue": failure.queue}
