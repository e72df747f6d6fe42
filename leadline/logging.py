"""JSON-lines logging with one redaction function used for every line.

Every log line, from our code, uvicorn or Dramatiq, passes through `redact_event`, which masks
phone numbers and emails anywhere in the text and drops the values of fields that hold PII or
secrets by name. Request and message ids are bound through contextvars.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any

import structlog

PII_FIELDS = frozenset(
    {
        "name",
        "phone",
        "email",
        "body",
        "message",
        "text",
        "to",
        "from",
        "from_",
        "payload",
        "first_message",
        "chat_id",
        "recipient",
        "secret",
        "token",
        "password",
        "authorization",
        "api_key",
        "key",
    }
)
EMAIL_RE = re.compile(r"[\w.!#$%&'*+/=?^`{|}~-]+@[\w-]+(?:\.[\w-]+)+")
PHONE_RE = re.compile(r"(?<![\w-])\+?\d[\d\s().-]{6,}\d(?![\w-])")
SAFE_FIELDS = frozenset({"timestamp", "level", "logger", "request_id", "message_id", "event_id"})
BEARER_RE = re.compile(r"(?i)(bearer\s+|ll_(?:live|test)_)[\w.-]+")
# Telegram puts the bot token in the URL path (/bot123456:AA.../sendMessage); httpx logs URLs.
TELEGRAM_TOKEN_RE = re.compile(r"(/bot)\d+:[\w-]+")


def mask_phone(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group(0))
    if len(digits) < 8:
        return match.group(0)
    prefix = "+" if match.group(0).startswith("+") else ""
    return f"{prefix}{digits[:1]}{'*' * (len(digits) - 5)}{digits[-4:]}"


def mask_email(match: re.Match[str]) -> str:
    local, _, domain = match.group(0).partition("@")
    return f"{local[:1]}***@{domain}"


def redact_text(text: str) -> str:
    """Mask emails, phone numbers and bearer credentials inside free text."""
    text = BEARER_RE.sub(lambda m: m.group(1) + "[redacted]", text)
    text = TELEGRAM_TOKEN_RE.sub(lambda m: m.group(1) + "[redacted]", text)
    text = EMAIL_RE.sub(mask_email, text)
    return PHONE_RE.sub(mask_phone, text)


def redact_value(key: str, value: Any) -> Any:
    if key in SAFE_FIELDS:
        return value
    if key.lower() in PII_FIELDS and value is not None:
        return "[redacted]"
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return {k: redact_value(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_value(key, item) for item in value]
    return value


def redact_event(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: the single redaction step for every log line."""
    for key, value in list(event_dict.items()):
        if key == "event":
            event_dict[key] = redact_text(str(value))
        else:
            event_dict[key] = redact_value(key, value)
    return event_dict


PRE_CHAIN: list[Any] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


def json_formatter() -> logging.Formatter:
    """The formatter every handler uses: pre-chain, redaction, one JSON object per line."""
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=PRE_CHAIN,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            redact_event,
            structlog.processors.JSONRenderer(),
        ],
    )


def configure_logging(level: str = "INFO", stream: Any = None) -> None:
    """Route structlog and stdlib logging into one JSON-lines stream."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(json_formatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "dramatiq"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *PRE_CHAIN,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


def get_logger(name: str) -> Any:
    return structlog.get_logger(name)


def bind_context(**values: str) -> None:
    structlog.contextvars.bind_contextvars(**values)


def clear_context() -> None:
    structlog.contextvars.clear_contextvars()
