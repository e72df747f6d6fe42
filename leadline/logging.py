"""JSON-lines logging with one redaction function used for every line.

Every log line, from our code, uvicorn or Dramatiq, passes through `redact_event`, which masks
phone numbers and emails anywhere in the text and drops the values of fields that hold PII or
secrets by name. Names cannot be recognised by pattern, so code that decrypts a person's data
marks the values it holds (`mark_sensitive`) and they are masked in every line written for the
same unit of work (one request or one message). Request and message ids are bound through
contextvars. Dead-letter records and the ops page use the same `redact_text`.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping
from contextvars import ContextVar
from functools import lru_cache
from typing import TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

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
# Dates and times look like phone numbers to PHONE_RE; they are kept (2025-01-31 12:00).
ISO_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}(?:[ T]\d{2})?$")
PII_SUFFIXES = ("_name", "_phone", "_email", "_body", "_token", "_secret", "_password", "_key")
SAFE_FIELDS = frozenset(
    {
        "timestamp",
        "level",
        "logger",
        "request_id",
        "message_id",
        "event_id",
        "actor",
        "actor_name",
        "queue_name",
        "job_name",
        "logger_name",
        "event_name",
        "table_name",
        "column_name",
    }
)
MASK = "[redacted]"
QUIET_LIBRARIES = ("boto3", "botocore", "s3transfer", "urllib3")
MIN_SENSITIVE_LENGTH = 2
_sensitive: ContextVar[set[str] | None] = ContextVar("leadline_sensitive_values", default=None)
BEARER_RE = re.compile(r"(?i)(bearer\s+|ll_(?:live|test)_)[\w.-]+")
# Telegram puts the bot token in the URL path (/bot123456:AA.../sendMessage); httpx logs URLs.
TELEGRAM_TOKEN_RE = re.compile(r"(/bot)\d+:[\w-]+")


def mask_phone(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group(0))
    if len(digits) < 8 or ISO_DATE_RE.match(match.group(0)):
        return match.group(0)
    prefix = "+" if match.group(0).startswith("+") else ""
    return f"{prefix}{digits[:1]}{'*' * (len(digits) - 5)}{digits[-4:]}"


def mask_email(match: re.Match[str]) -> str:
    local, _, domain = match.group(0).partition("@")
    return f"{local[:1]}***@{domain}"


def mark_sensitive(*values: str | None) -> None:
    """Mask these values (and each word of them) in every line of the current unit of work.

    The set is shared by reference with threads the unit hands work to (a threadpool copies
    the context, not the set), so values marked there are masked in the caller's lines too.
    """
    marked = _sensitive.get()
    if marked is None:
        marked = set()
        _sensitive.set(marked)
    for value in values:
        if not isinstance(value, str):
            continue
        for part in (value.strip(), *value.split()):
            if len(part) >= MIN_SENSITIVE_LENGTH:
                marked.add(part)


def reset_sensitive() -> None:
    """Start a new unit of work (request or message) with nothing marked."""
    _sensitive.set(set())


def sensitive_values() -> frozenset[str]:
    return frozenset(_sensitive.get() or ())


@lru_cache(maxsize=256)
def _sensitive_pattern(values: frozenset[str]) -> re.Pattern[str]:
    alternatives = "|".join(re.escape(v) for v in sorted(values, key=len, reverse=True))
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)


def _is_word_char(char: str) -> bool:
    return char.isalnum() or char == "_"


def _whole_word(text: str, start: int, end: int) -> bool:
    before = start == 0 or not _is_word_char(text[start - 1])
    return before and (end == len(text) or not _is_word_char(text[end]))


def mask_marked(text: str, marked: frozenset[str]) -> str:
    """Mask every whole-word, case-insensitive occurrence of the marked values, longest first.

    Plain substring search: each unit of work marks new values, and compiling a pattern of
    them for every request cost more than the rest of a log line."""
    lowered = text.lower()
    if len(lowered) != len(text):  # a case mapping changed lengths: positions would not match
        return _sensitive_pattern(marked).sub(MASK, text)
    spans: list[tuple[int, int]] = []
    for value in sorted(marked, key=len, reverse=True):
        needle = value.lower()
        start = lowered.find(needle)
        while start != -1:
            end = start + len(needle)
            free = all(end <= s or start >= e for s, e in spans)
            if free and _whole_word(lowered, start, end):
                spans.append((start, end))
            start = lowered.find(needle, start + 1)
    if not spans:
        return text
    pieces, position = [], 0
    for start, end in sorted(spans):
        pieces += [text[position:start], MASK]
        position = end
    pieces.append(text[position:])
    return "".join(pieces)


def redact_text(text: str) -> str:
    """Mask credentials, emails, phone numbers and marked values inside free text.

    The patterns go first: a marked value inside an address (a marked word that is also its
    domain) must not break the address apart before the email pattern sees it whole."""
    text = BEARER_RE.sub(lambda m: m.group(1) + MASK, text)
    text = TELEGRAM_TOKEN_RE.sub(lambda m: m.group(1) + MASK, text)
    text = EMAIL_RE.sub(mask_email, text)
    text = PHONE_RE.sub(mask_phone, text)
    marked = sensitive_values()
    return mask_marked(text, marked) if marked else text


def is_pii_field(key: str) -> bool:
    lowered = key.lower()
    return lowered in PII_FIELDS or lowered.endswith(PII_SUFFIXES)


def redact_value(key: str, value: object) -> object:
    if key in SAFE_FIELDS:
        return value
    if is_pii_field(key) and value is not None:
        return MASK
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return {k: redact_value(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_value(key, item) for item in value]
    return value


def redact_event(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """structlog processor: the single redaction step for every log line."""
    for key, value in list(event_dict.items()):
        if key == "event":
            event_dict[key] = redact_text(str(value))
        else:
            event_dict[key] = redact_value(key, value)
    return event_dict


PRE_CHAIN: list[Processor] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


def json_formatter() -> logging.Formatter:
    """The formatter every handler uses: pre-chain, redaction, one JSON object per line."""
    return structlog.stdlib.ProcessorFormatter(
        # Lines from stdlib loggers (uvicorn, Dramatiq, `extra=`) keep their extra fields, so
        # they share the schema and go through the same redaction.
        foreign_pre_chain=[*PRE_CHAIN, structlog.stdlib.ExtraAdder()],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            redact_event,
            structlog.processors.JSONRenderer(),
        ],
    )


def configure_logging(level: str = "INFO", stream: TextIO | None = None) -> None:
    """Route structlog and stdlib logging into one JSON-lines stream."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(json_formatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "dramatiq"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # pika narrates every connection it opens and closes at INFO; its warnings still show.
    logging.getLogger("pika").setLevel(max(logging.WARNING, root.level))
    # Their debug lines carry signed request headers (an AWS session token among them).
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
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


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    return structlog.stdlib.get_logger(name)


def clear_context() -> None:
    """End a unit of work: drop bound ids and marked values."""
    structlog.contextvars.clear_contextvars()
    reset_sensitive()
