"""Carries the request id from the enqueuing code to the worker's log lines.

Only ids travel in message options, never payloads. Values marked sensitive while a message is
processed stay marked until the next message starts, so the dead-letter record written at nack
time (after `after_process_message`) is masked with them too.
"""

from __future__ import annotations

import dramatiq
import structlog
from dramatiq.broker import MessageProxy
from dramatiq.middleware import Middleware

from leadline.logging import clear_context

REQUEST_ID_OPTION = "request_id"


class LogContext(Middleware):
    """Binds message id, actor and request id to every log line of a message's processing."""

    def before_enqueue(
        self, broker: dramatiq.Broker, message: dramatiq.Message[object], delay: int
    ) -> None:
        request_id = structlog.contextvars.get_contextvars().get("request_id")
        if request_id and REQUEST_ID_OPTION not in message.options:
            message.options[REQUEST_ID_OPTION] = request_id

    def before_process_message(self, broker: dramatiq.Broker, message: MessageProxy) -> None:
        clear_context()
        structlog.contextvars.bind_contextvars(
            message_id=message.message_id, actor=message.actor_name
        )
        request_id = message.options.get(REQUEST_ID_OPTION)
        if request_id:
            structlog.contextvars.bind_contextvars(request_id=str(request_id))

    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: MessageProxy,
        *,
        result: object = None,
        exception: BaseException | None = None,
    ) -> None:
        structlog.contextvars.clear_contextvars()

    def after_skip_message(self, broker: dramatiq.Broker, message: MessageProxy) -> None:
        structlog.contextvars.clear_contextvars()
