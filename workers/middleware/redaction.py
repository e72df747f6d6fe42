"""Keeps PII out of Redis: Retries stores the formatted traceback in the message options it
re-enqueues (and Dramatiq keeps failed messages in `.XQ` for 7 days), so the traceback is
passed through the one redaction function before the message is written."""

from __future__ import annotations

import dramatiq
from dramatiq.middleware import Middleware

from leadline.logging import redact_text

TRACEBACK_OPTION = "traceback"


class RedactedTracebacks(Middleware):
    def before_enqueue(
        self, broker: dramatiq.Broker, message: dramatiq.Message[object], delay: int
    ) -> None:
        traceback = message.options.get(TRACEBACK_OPTION)
        if isinstance(traceback, str):
            message.options[TRACEBACK_OPTION] = redact_text(traceback)
