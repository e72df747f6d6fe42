"""Keyset pagination: a page continues after the (created_at, id) of the last row seen, so
pages stay stable while rows are added, and every page is one index range scan."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import tuple_
from sqlalchemy.orm import InstrumentedAttribute
from sqlalchemy.sql.elements import ColumnElement

MAX_PAGE = 200
DEFAULT_PAGE = 50


@dataclass(frozen=True)
class Position:
    """Where a page ended: the last row's creation time and id."""

    created_at: datetime
    id: uuid.UUID


def after(
    created_at: InstrumentedAttribute[datetime],
    row_id: InstrumentedAttribute[uuid.UUID],
    position: Position,
    newest_first: bool,
) -> ColumnElement[bool]:
    """Rows strictly past `position` in the page order (created_at, id)."""
    here = tuple_(created_at, row_id)
    there = tuple_(position.created_at, position.id)
    return here < there if newest_first else here > there
