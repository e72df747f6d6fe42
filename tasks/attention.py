"""Reading the attention lists other modules register with `tasks.registry.attention`.

Each source runs in its own maintenance session, so one broken source is reported as
unavailable without hiding the others.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from leadline.logging import get_logger
from models.db import Database
from tasks.registry import ATTENTION

log = get_logger(__name__)


@dataclass
class Listing:
    """A titled table of rows (dicts); `error` when its source could not be read."""

    name: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None

    @property
    def columns(self) -> list[str]:
        seen: dict[str, None] = {}
        for row in self.rows:
            seen.update(dict.fromkeys(row))
        return list(seen)

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "rows": self.rows, "error": self.error}


def read_attention(db: Database) -> list[Listing]:
    return [read_attention_source(db, name) for name in sorted(ATTENTION)]


def read_attention_source(db: Database, name: str) -> Listing:
    try:
        with db.maintenance() as session:
            return Listing(name, rows=list(ATTENTION[name](session)))
    except Exception as exc:
        log.warning("attention source failed", source=name, error=type(exc).__name__)
        return Listing(name, error=f"unavailable ({type(exc).__name__})")
