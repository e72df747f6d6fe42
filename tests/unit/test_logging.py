from __future__ import annotations

import io
import json
import logging

from leadline.logging import json_formatter, redact_text


def test_phone_numbers_and_emails_are_masked() -> None:
    text = redact_text("call +14155550123 or (415) 555-0123, mail ada.l@example.com")
    assert "+1******0123" in text
    assert "4155550123" not in text and "555-0123" not in text
    assert "ada.l@example.com" not in text and "a***@example.com" in text


def test_ids_and_bearer_tokens() -> None:
    text = redact_text("event 123e4567-e89b-12d3-a456-426614174000 Bearer ll_ab12cd34_secretpart")
    assert "123e4567-e89b-12d3-a456-426614174000" in text
    assert "secretpart" not in text


def test_every_log_line_goes_through_redaction() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(json_formatter())
    logger = logging.getLogger("test.redaction")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        try:
            raise ValueError("bad number +14155550123 for ada@example.com")
        except ValueError:
            logger.exception("failed for %s", "+14155550123")
    finally:
        logger.removeHandler(handler)
    line = json.loads(stream.getvalue())
    assert "4155550123" not in stream.getvalue()
    assert "ada@example.com" not in stream.getvalue()
    assert line["level"] == "error" and "ValueError" in line["exception"]


def test_named_pii_fields_are_dropped() -> None:
    from leadline.logging import redact_event

    event = redact_event(None, "info", {"event": "x", "name": "Ada", "body": "hi", "count": 3})
    assert event == {"event": "x", "name": "[redacted]", "body": "[redacted]", "count": 3}


def test_telegram_bot_token_in_a_url_is_redacted() -> None:
    from leadline.logging import redact_text

    line = 'HTTP Request: POST https://api.telegram.org/bot123456:AAF-x_9/sendMessage "200 OK"'
    assert redact_text(line) == (
        'HTTP Request: POST https://api.telegram.org/bot[redacted]/sendMessage "200 OK"'
    )
