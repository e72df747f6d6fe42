"""Where messages come from and go to: an org's Twilio numbers and its Telegram alert chats."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import DateTime, Index, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, now_column, org_fk, uuid_pk


class OrgPhoneNumber(Base):
    """A business number owned by the org; inbound SMS to it route to the org.

    Stored in clear: it is the business's own published number, not a person's, and routing
    must find it before the organisation is known.
    """

    __tablename__ = "org_phone_numbers"

    id: Mapped[uuid.UUID] = uuid_pk()
    org_id: Mapped[uuid.UUID] = org_fk()
    number: Mapped[str] = mapped_column(String(20), nullable=False, unique=True)
    # A Twilio Messaging Service (10DLC campaign) to send through instead of `From` this number.
    messaging_service_sid: Mapped[str | None] = mapped_column(String(34))
    created_at: Mapped[datetime] = now_column()


class TelegramChat(Base):
    """A Telegram chat that receives the org's lead alerts once linked."""

    __tablename__ = "telegram_chats"
    __table_args__ = (Index("uq_telegram_chats_chat", "org_id", "chat_bidx", unique=True),)

    id: Mapped[uuid.UUID] = uuid_pk()
    org_id: Mapped[uuid.UUID] = org_fk()
    chat_id_ct: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    chat_bidx: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    status: Mapped[str] = mapped_column(String(20), nullable=False, default="pending")
    created_at: Mapped[datetime] = now_column()
    linked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    unlinked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
