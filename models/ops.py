"""Operator-facing records: messages Dramatiq gave up on.

`dead_letters` is cross-tenant (maintenance sessions only). It holds ids, codes and redacted
error text, never payloads: messages carry ids only. Unlike Dramatiq's own `.XQ` (kept 7 days
by the broker), these rows survive the broker's loss and stay until an operator replays or
purges them.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import DateTime, Index, Integer, String, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from leadline.jsondata import JsonObject
from models.base import Base, now_column, uuid_pk


class DeadLetterState(StrEnum):
    DEAD = "dead"
    REPLAYED = "replayed"
    PURGED = "purged"


class DeadLetter(Base):
    __tablename__ = "dead_letters"
    __table_args__ = (Index("ix_dead_letters_state_failed", "state", "last_failed_at"),)

    id: Mapped[uuid.UUID] = uuid_pk()
    message_id: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    broker_message_id: Mapped[str | None] = mapped_column(String(64))
    queue: Mapped[str] = mapped_column(String(100), nullable=False)
    actor: Mapped[str] = mapped_column(String(100), nullable=False)
    args: Mapped[list[object]] = mapped_column(JSONB, nullable=False, default=list)
    kwargs: Mapped[JsonObject] = mapped_column(JSONB, nullable=False, default=dict)
    reason: Mapped[str] = mapped_column(String(32), nullable=False)
    retries: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    failures: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    replays: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    error_class: Mapped[str] = mapped_column(String(200), nullable=False)
    error_message: Mapped[str] = mapped_column(String(500), nullable=False, default="")
    traceback: Mapped[str | None] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(20), nullable=False, default=DeadLetterState.DEAD)
    first_failed_at: Mapped[datetime] = now_column()
    last_failed_at: Mapped[datetime] = now_column()
    replayed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    purged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
