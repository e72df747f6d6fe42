from __future__ import annotations

import contextvars
import io
import json
import logging
from collections.abc import Callable

import pytest

from leadline.logging import (
    clear_context,
    json_formatter,
    mark_sensitive,
    redact_event,
    redact_text,
    reset_sensitive,
)

pytestmark = pytest.mark.unit


def test_phone_numbers_and_emails_are_masked() -> None:
    reset_sensitive()  # nothing marked by an earlier test in this thread
    text = redact_text("call +14155550123 or (415) 555-0123, mail ada.l@example.com")
    assert "+1******0123" in text
    assert "4155550123" not in text and "555-0123" not in text
    assert "ada.l@example.com" not in text and "a***@example.com" in text


def test_a_marked_word_inside_an_address_does_not_unmask_the_address() -> None:
    reset_sensitive()
    mark_sensitive("Example")
    text = redact_text("mail ada.l@example.com")
    assert "ada.l" not in text
    assert text == "mail a***@[redacted].com"
    reset_sensitive()


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
    event = redact_event(None, "info", {"event": "x", "name": "Ada", "body": "hi", "count": 3})
    assert event == {"event": "x", "name": "[redacted]", "body": "[redacted]", "count": 3}


def test_telegram_bot_token_in_a_url_is_redacted() -> None:
    from leadline.logging import redact_text

    line = 'HTTP Request: POST https://api.telegram.org/bot123456:AAF-x_9/sendMessage "200 OK"'
    assert redact_text(line) == (
        'HTTP Request: POST https://api.telegram.org/bot[redacted]/sendMessage "200 OK"'
    )


def one_json_line(emit: Callable[[logging.Logger], None]) -> str:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(json_formatter())
    logger = logging.getLogger("test.redaction.names")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        emit(logger)
    finally:
        logger.removeHandler(handler)
    return stream.getvalue()


def test_marked_names_are_masked_in_messages_exceptions_and_extra_fields() -> None:
    reset_sensitive()
    mark_sensitive("Zebulon Quartermaine", "+14155550199", None)

    def emit(logger: logging.Logger) -> None:
        try:
            raise ValueError("no consent from zebulon quartermaine")
        except ValueError:
            logger.exception(
                "alert for %s failed", "Zebulon", extra={"detail": "Quartermaine asked twice"}
            )

    try:
        text = one_json_line(emit)
    finally:
        reset_sensitive()
    line = json.loads(text)
    assert "zebulon" not in text.lower() and "quartermaine" not in text.lower()
    assert line["event"] == "alert for [redacted] failed"
    assert line["detail"] == "[redacted] asked twice"
    assert "[redacted]" in line["exception"]


def test_structlog_extra_fields_are_redacted_by_name_and_content() -> None:
    event = redact_event(
        None,
        "info",
        {
            "event": "lead stored",
            "lead_name": "Ada",
            "contact_email": "ada@example.com",
            "input": {"phone": "+14155550123", "note": "call +14155550123"},
            "actor_name": "send_sms",
            "queue_name": "alerts",
            "count": 2,
        },
    )
    assert event["lead_name"] == "[redacted]" and event["contact_email"] == "[redacted]"
    assert event["input"] == {"phone": "[redacted]", "note": "call +1******0123"}
    assert (event["actor_name"], event["queue_name"], event["count"]) == ("send_sms", "alerts", 2)


def test_marks_belong_to_one_unit_of_work_and_reach_its_threads() -> None:
    reset_sensitive()
    copied = contextvars.copy_context()
    copied.run(mark_sensitive, "Philippa")  # as a threadpool worker of the same request would
    assert redact_text("hello Philippa") == "hello [redacted]"
    clear_context()
    assert redact_text("hello Philippa") == "hello Philippa"


def test_short_words_and_partial_matches_are_left_alone() -> None:
    reset_sensitive()
    mark_sensitive("Al Bo")
    try:
        assert redact_text("Al said Albert and Bo ok") == "[redacted] said Albert and [redacted] ok"
        assert redact_text("a b c") == "a b c"
    finally:
        reset_sensitive()


def test_dates_and_times_are_not_mistaken_for_phone_numbers() -> None:
    text = redact_text(
        "due 2025-01-31, ran 2025-01-31T12:00:05Z and 2025-01-31 12:00; +14155550123"
    )
    assert "due 2025-01-31, ran 2025-01-31T12:00:05Z and 2025-01-31 12:00;" in text
    assert "+1******0123" in text
