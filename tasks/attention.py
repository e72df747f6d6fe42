"""What operators must look at (`leadline dlq list`, the ops page): rows no machine will
settle, each list from its own source. No PII: ids, states, codes and times only.

Each source runs in its own maintenance session, so one broken source is reported as
unavailable without hiding the others.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from leadline.logging import get_logger
from models.connections import expired_connections
from models.db import Database
from models.outbound_messages import carrier_rejections, unknown_outbound
from tasks.webhooks.operations import disabled_endpoints

log = get_logger(__name__)
AttentionRow = dict[str, object]
AttentionSource = Callable[[Session], list[AttentionRow]]
ATTENTION_LISTS: dict[str, AttentionSource] = {
    # messages that may or may not have been sent; never re-sent to a lead without a person
    "unknown_sms": unknown_outbound,
    # Twilio 30007 / 30034 per org and sending number: 10DLC registration or content to fix
    "carrier_rejections": carrier_rejections,
    "disabled_endpoints": disabled_endpoints,
    # social-channel connections whose token the provider rejected: the business reconnects
    "expired_connections": expired_connections,
}


@dataclass
class Listing:
    """A titled table of rows (dicts); `error` when its source could not be read."""

    name: str
    rows: list[AttentionRow] = field(default_factory=list)
    error: str | None = None

    @property
    def columns(self) -> list[str]:
        seen: dict[str, None] = {}
        for row in self.rows:
            seen.update(dict.fromkeys(row))
        return list(seen)

    def as_dict(self) -> AttentionRow:
        return {"name": self.name, "rows": self.rows, "error": self.error}


def read_attention(db: Database) -> list[Listing]:
    return [read_attention_source(db, name) for name in sorted(ATTENTION_LISTS)]


def read_attention_source(db: Database, name: str) -> Listing:
    try:
        with db.maintenance() as session:
            return Listing(name, rows=list(ATTENTION_LISTS[name](session)))
    except Exception as exc:
        log.warning("attention source failed", source=name, error=type(exc).__name__)
        return Listing(name, error=f"unavailable ({type(exc).__name__})")
