"""What an inbound SMS asks for: opt out, opt in, help, or nothing (a conversation message).

Keywords count only as the whole message (case-insensitive, trimmed, trailing punctuation
dropped). Free-text revocations ("please stop texting me") also opt out: when in doubt we
stop, because texting someone who asked us not to is the failure that matters.
"""

from __future__ import annotations

import re
from enum import Enum


class Intent(Enum):
    OPT_OUT = "opt_out"
    OPT_IN = "opt_in"
    HELP = "help"
    MESSAGE = "message"


OPT_OUT_KEYWORDS = frozenset(
    {
        "stop",
        "stopall",
        "stop all",
        "unsubscribe",
        "cancel",
        "end",
        "quit",
        "revoke",
        "optout",
        "opt out",
        "opt-out",
    }
)
OPT_IN_KEYWORDS = frozenset({"start", "yes", "unstop"})
HELP_KEYWORDS = frozenset({"help", "info"})

_VERBS = (
    r"(?:text|texting|txt|message|messaging|msg|contact|contacting|call|calling|sms"
    r"|send|sending|email|emailing)"
)
REVOCATION_PATTERNS = [
    re.compile(pattern)
    for pattern in (
        rf"\bstop\s+(?:all\s+)?{_VERBS}",
        r"\bstop\s+(?:it|this|these|now|please)\b",
        r"\bplease\s+stop\b(?!\s+by\b)",
        rf"\b(?:do\s*n[o']?t|dont|never)\s+{_VERBS}\s+me\b",
        r"\bunsubscribe\b",
        r"\bopt\s*-?\s*(?:me\s+)?out\b",
        r"\bremove\s+(?:me|my\s+(?:number|phone|name))\b",
        r"\btake\s+me\s+off\b",
        r"\bno\s+more\s+(?:texts?|messages?|msgs?|sms)\b",
        r"\b(?:leave|let)\s+me\s+alone\b",
        r"\bwrong\s+number\b",
        r"\bnot\s+interested\b",
    )
]
_TRAILING = re.compile(r"[\s.!?,;:'\"()\-]+$")
_LEADING = re.compile(r"^[\s\"'(]+")
_SPACES = re.compile(r"\s+")


def normalize_keyword(body: str) -> str:
    text = _SPACES.sub(" ", body.casefold())
    return _TRAILING.sub("", _LEADING.sub("", text))


def classify(body: str) -> Intent:
    keyword = normalize_keyword(body)
    if keyword in OPT_OUT_KEYWORDS:
        return Intent.OPT_OUT
    if keyword in OPT_IN_KEYWORDS:
        return Intent.OPT_IN
    if keyword in HELP_KEYWORDS:
        return Intent.HELP
    if any(pattern.search(keyword) for pattern in REVOCATION_PATTERNS):
        return Intent.OPT_OUT
    return Intent.MESSAGE
