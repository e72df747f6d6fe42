"""Cursors of the tenant API: opaque to callers (base64url of the last row's position),
checked on the way in (a malformed one is 422 naming `cursor`, never a 500)."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Protocol

from fastapi import Query
from pydantic import BaseModel

from intake.api_errors import ApiError, FieldError
from models.pagination import DEFAULT_PAGE, MAX_PAGE, Position

Limit = Annotated[int, Query(ge=1, le=MAX_PAGE, description="Items per page (≤ 200).")]
Cursor = Annotated[
    str | None,
    Query(max_length=200, description="`next_cursor` of the previous page; omit for the first."),
]
DEFAULT_LIMIT = DEFAULT_PAGE


class Page(BaseModel):
    """Every list answers `{"data": [...], "next_cursor": ...}`; null: no more pages."""

    next_cursor: str | None


def encode_cursor(position: Position) -> str:
    raw = json.dumps([position.created_at.isoformat(), str(position.id)]).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(cursor: str | None) -> Position | None:
    if cursor is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        moment, row_id = json.loads(raw)
        position = Position(datetime.fromisoformat(moment), uuid.UUID(row_id))
    except (binascii.Error, ValueError, TypeError):
        raise invalid_cursor() from None
    if position.created_at.tzinfo is None:
        raise invalid_cursor()
    return position


def invalid_cursor() -> ApiError:
    field: FieldError = {
        "loc": ["query", "cursor"],
        "msg": "not a cursor this API gave",
        "type": "cursor",
    }
    return ApiError(422, "invalid request", fields=[field])


class PagedRow(Protocol):
    """A row of a page: ORM rows and the views built from them."""

    @property
    def created_at(self) -> datetime: ...

    @property
    def id(self) -> uuid.UUID: ...


def next_cursor(rows: Sequence[PagedRow], limit: int) -> str | None:
    """A cursor after the last row when the page is full."""
    if len(rows) < limit:
        return None
    last = rows[-1]
    return encode_cursor(Position(last.created_at, last.id))
